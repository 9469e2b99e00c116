import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an exchange ended that the transport itself detected.
enum TransportError: Error, Sendable, Equatable {
    /// The worker closed the connection before its answer ended.
    case remoteClosed
    /// The request's deadline passed.
    case deadlineExceeded
    /// The answer is longer than the reader accepts.
    case bodyTooLarge(limit: Int)
    /// The transport is shut down.
    case shutDown
}

extension WorkerFailure {
    /// Classifies an error met by the transport, in words an operator can act on.
    init(_ error: any Error) {
        if let failure = error as? WorkerFailure {
            self = failure
            return
        }
        if let connection = error as? NIOConnectionError {
            let causes = connection.connectionErrors.map(\.error)
            if causes.contains(where: Self.isRefusal) {
                self = .refused("connection refused by \(connection.host):\(connection.port)")
                return
            }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError, causes.isEmpty {
                self = .broken("cannot resolve \(connection.host): \(dns)")
                return
            }
            self = .broken("cannot connect to \(connection.host):\(connection.port): \(causes.map { "\($0)" }.joined(separator: "; "))")
            return
        }
        if Self.isRefusal(error) {
            self = .refused("connection refused")
            return
        }
        if let transport = error as? TransportError {
            switch transport {
            case .remoteClosed: self = .broken("the worker closed the connection")
            case .deadlineExceeded: self = .timedOut("timed out waiting for the answer")
            case .bodyTooLarge(let limit): self = .broken("the answer is longer than \(limit) bytes")
            case .shutDown: self = .broken("the gateway is shutting down")
            }
            return
        }
        if let channel = error as? ChannelError {
            switch channel {
            case .connectTimeout: self = .timedOut("timed out connecting")
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed: self = .broken("the worker closed the connection")
            default: self = .broken("\(channel)")
            }
            return
        }
        if let parse = error as? HTTPParserError {
            self = parse == .invalidEOFState ? .broken("the worker closed the connection mid-answer") : .broken("the worker's answer is not valid HTTP/1.1: \(parse)")
            return
        }
        if let tls = error as? NIOSSLError {
            self = .broken("TLS: \(tls)")
            return
        }
        if let tls = error as? BoringSSLError {
            self = .broken("TLS: \(tls)")
            return
        }
        if let io = error as? IOError {
            self = io.errnoCode == ECONNRESET ? .broken("the worker reset the connection") : .broken("\(io)")
            return
        }
        if error is CancellationError {
            self = .broken("cancelled")
            return
        }
        self = .broken("\(error)")
    }

    private static func isRefusal(_ error: any Error) -> Bool {
        if let io = error as? IOError, io.errnoCode == ECONNREFUSED { return true }
        if let connection = error as? NIOConnectionError {
            return connection.connectionErrors.contains { isRefusal($0.error) }
        }
        return false
    }
}
