/// The prefill side of the sim's KV hand-off, as a state machine: which rooms (SGLang's
/// `bootstrap_room`, or a vLLM `remote_request_id`) have their prefill pending, ready or
/// failed, and which decode connection waits for each. No I/O, no clock of its own.
///
/// The protocol it serves is in `docs/sim-worker-pd.md`: a decode sends `WAIT <room>` (or
/// `PULL <id>`); the prefill answers `KV <room> <tokens>` once its prefill is done, the
/// decode acknowledges with `ACK <room>`; `ERR <room> <reason>` or a closed connection
/// is a failure.
struct BootstrapRooms: Sendable {
    typealias ConnectionID = Int

    enum Action: Sendable, Equatable {
        /// Send `KV <key> <tokens>` on the connection.
        case sendKV(ConnectionID, key: String, tokens: Int)
        /// Send `ERR <key> <reason>` and close the connection.
        case sendError(ConnectionID, key: String, reason: String)
        /// Close the connection (the exchange is over).
        case close(ConnectionID)
        /// The prefill request that waits for its KV to be taken can answer now.
        case prefillDone(key: String, failure: String?)
    }

    private enum Prefill: Sendable {
        case pending
        case ready(tokens: Int, waitsForAck: Bool, expiresAt: UInt64)
        case failed(reason: String, expiresAt: UInt64)
    }

    private struct Room: Sendable {
        var prefill: Prefill?
        var decode: ConnectionID?
        var decodeGone = false
        var sent = false
    }

    /// How long a ready KV waits for its decode, and a failure is remembered, in nanoseconds.
    let timeoutNanos: UInt64
    private var rooms: [String: Room] = [:]
    private var keyOfConnection: [ConnectionID: String] = [:]

    init(timeoutNanos: UInt64) {
        self.timeoutNanos = timeoutNanos
    }

    /// Rooms known (pending, ready, failed or waited for).
    var count: Int { rooms.count }

    /// A prefill request for `key` arrived.
    mutating func prefillStarted(_ key: String) {
        var room = rooms[key] ?? Room()
        if room.prefill == nil { room.prefill = .pending }
        rooms[key] = room
    }

    /// The prefill of `key` computed `tokens` tokens of KV. With `waitsForAck` (SGLang)
    /// the prefill request answers only once a decode took it (`prefillDone`).
    mutating func prefillReady(_ key: String, tokens: Int, waitsForAck: Bool, now: UInt64) -> [Action] {
        var room = rooms[key] ?? Room()
        if room.decodeGone {
            rooms[key] = nil
            return waitsForAck ? [.prefillDone(key: key, failure: "the decode of room \(key) went away")] : []
        }
        room.prefill = .ready(tokens: tokens, waitsForAck: waitsForAck, expiresAt: now + timeoutNanos)
        var actions: [Action] = []
        if let decode = room.decode, !room.sent {
            room.sent = true
            actions.append(.sendKV(decode, key: key, tokens: tokens))
        }
        rooms[key] = room
        return actions
    }

    /// The prefill of `key` failed or its request was cancelled.
    mutating func prefillFailed(_ key: String, reason: String, now: UInt64) -> [Action] {
        var room = rooms[key] ?? Room()
        var actions: [Action] = []
        if case .ready(_, true, _)? = room.prefill {
            actions.append(.prefillDone(key: key, failure: reason))
        }
        if let decode = room.decode {
            keyOfConnection[decode] = nil
            actions.append(.sendError(decode, key: key, reason: reason))
            rooms[key] = nil
            return actions
        }
        room.prefill = .failed(reason: reason, expiresAt: now + timeoutNanos)
        rooms[key] = room
        return actions
    }

    /// Whether a decode connection waits on (or took) the KV of `key`.
    func hasDecode(_ key: String) -> Bool { rooms[key]?.decode != nil }

    /// A decode connection asks for the KV of `key`. With `mustExist` (vLLM's pull, which
    /// comes after its prefill answered) an unknown key is an error at once.
    mutating func decodeWaits(_ key: String, connection: ConnectionID, now: UInt64, mustExist: Bool = false) -> [Action] {
        if mustExist, rooms[key]?.prefill == nil {
            return [.sendError(connection, key: key, reason: "no KV is held for request \(key)")]
        }
        var room = rooms[key] ?? Room()
        if room.decode != nil {
            return [.sendError(connection, key: key, reason: "room \(key) already has a decode")]
        }
        switch room.prefill {
        case .failed(let reason, _)?:
            rooms[key] = nil
            return [.sendError(connection, key: key, reason: reason)]
        case .ready(let tokens, _, _)?:
            room.decode = connection
            room.sent = true
            rooms[key] = room
            keyOfConnection[connection] = key
            return [.sendKV(connection, key: key, tokens: tokens)]
        case .pending?, nil:
            room.decode = connection
            rooms[key] = room
            keyOfConnection[connection] = key
            return []
        }
    }

    /// The decode acknowledged the KV of `key`: the hand-off is complete.
    mutating func decodeAcked(_ key: String, connection: ConnectionID) -> [Action] {
        guard let room = rooms[key], room.decode == connection, room.sent else {
            return [.sendError(connection, key: key, reason: "no KV of room \(key) was sent on this connection")]
        }
        rooms[key] = nil
        keyOfConnection[connection] = nil
        var actions: [Action] = [.close(connection)]
        if case .ready(_, true, _)? = room.prefill { actions.insert(.prefillDone(key: key, failure: nil), at: 0) }
        return actions
    }

    /// A decode connection closed (or broke) before acknowledging.
    mutating func decodeClosed(_ connection: ConnectionID) -> [Action] {
        guard let key = keyOfConnection.removeValue(forKey: connection), var room = rooms[key], room.decode == connection else {
            return []
        }
        switch room.prefill {
        case .ready(_, let waitsForAck, _)?:
            rooms[key] = nil
            return waitsForAck ? [.prefillDone(key: key, failure: "the decode of room \(key) went away")] : []
        case .pending?:
            room.decode = nil
            room.decodeGone = true
            rooms[key] = room
            return []
        case .failed?, nil:
            rooms[key] = nil
            return []
        }
    }

    /// Time passed: ready KV nobody took and remembered failures past their time go.
    mutating func expire(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for (key, room) in rooms {
            switch room.prefill {
            case .ready(_, let waitsForAck, let expiresAt)? where expiresAt <= now:
                rooms[key] = nil
                if let decode = room.decode {
                    keyOfConnection[decode] = nil
                    actions.append(.sendError(decode, key: key, reason: "room \(key) expired"))
                }
                if waitsForAck {
                    actions.append(.prefillDone(key: key, failure: "no decode took the KV of room \(key) in time"))
                }
            case .failed(_, let expiresAt)? where expiresAt <= now:
                rooms[key] = nil
            default:
                break
            }
        }
        return actions
    }
}
