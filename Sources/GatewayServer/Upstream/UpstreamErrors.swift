import AsyncHTTPClient
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What kind of failure a worker call met, in words an operator can act on.
enum UpstreamFailure: Sendable, Equatable {
    /// Nothing listens at the address (or the host refused the connection).
    case connectionRefused(String)
    /// Connecting or answering took longer than allowed.
    case timeout(String)
    /// Anything else on the transport (reset, DNS, TLS …).
    case transport(String)

    var message: String {
        switch self {
        case .connectionRefused(let m), .timeout(let m), .transport(let m): m
        }
    }

    var isConnectionRefused: Bool {
        if case .connectionRefused = self { return true }
        return false
    }

    /// Classifies an error thrown by the HTTP client.
    init(_ error: any Error) {
        if let connection = error as? NIOConnectionError {
            let causes = connection.connectionErrors.map(\.error)
            if causes.contains(where: Self.isRefusal) {
                self = .connectionRefused("connection refused by \(connection.host):\(connection.port)")
                return
            }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError, causes.isEmpty {
                self = .transport("cannot resolve \(connection.host): \(dns)")
                return
            }
            self = .transport("cannot connect to \(connection.host):\(connection.port): \(causes.map { "\($0)" }.joined(separator: "; "))")
            return
        }
        if Self.isRefusal(error) {
            self = .connectionRefused("connection refused")
            return
        }
        if let upstream = error as? UpstreamClientError {
            switch upstream {
            case .remoteClosed: self = .transport("the worker closed the connection")
            case .deadlineExceeded: self = .timeout("timed out waiting for the answer")
            case .bodyTooLarge(let limit): self = .transport("the answer is longer than \(limit) bytes")
            }
            return
        }
        if let channel = error as? ChannelError, case .connectTimeout = channel {
            self = .timeout("timed out connecting")
            return
        }
        if let client = error as? HTTPClientError {
            switch client {
            case .connectTimeout: self = .timeout("timed out connecting")
            case .readTimeout, .deadlineExceeded: self = .timeout("timed out waiting for the answer")
            case .remoteConnectionClosed: self = .transport("the worker closed the connection")
            default: self = .transport("\(client)")
            }
            return
        }
        if error is CancellationError {
            self = .transport("cancelled")
            return
        }
        self = .transport("\(error)")
    }

    private static func isRefusal(_ error: any Error) -> Bool {
        if let io = error as? IOError, io.errnoCode == ECONNREFUSED { return true }
        if let connection = error as? NIOConnectionError {
            return connection.connectionErrors.contains { isRefusal($0.error) }
        }
        return false
    }
}
