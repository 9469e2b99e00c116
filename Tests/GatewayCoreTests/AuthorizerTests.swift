import Testing

@testable import GatewayCore

@Suite("Authorizer")
struct AuthorizerTests {
    @Test("Without an admin key, worker management is for loopback clients only")
    func loopbackOnly() {
        let authorizer = Authorizer(apiKey: nil, adminAPIKey: nil)
        #expect(throws: Never.self) { try authorizer.check(.admin, key: nil, peerIP: "127.0.0.1") }
        #expect(throws: Never.self) { try authorizer.check(.admin, key: nil, peerIP: "::1") }
        #expect(throws: Never.self) { try authorizer.check(.admin, key: nil, peerIP: "::ffff:127.0.0.9") }
        do throws(GatewayError) {
            try authorizer.check(.admin, key: nil, peerIP: "10.1.2.3")
            Issue.record("a remote client managed workers")
        } catch {
            #expect(error.status == 403)
            #expect(error.code.control == "FORBIDDEN")
        }
        #expect(throws: Never.self) { try authorizer.check(.inference, key: nil, peerIP: "10.1.2.3") }
    }

    @Test("Keys: the API key opens inference, the admin key both; a wrong or missing key is a 401 with WWW-Authenticate")
    func keys() {
        let authorizer = Authorizer(apiKey: "user", adminAPIKey: "admin")
        #expect(throws: Never.self) { try authorizer.check(.inference, key: "user", peerIP: nil) }
        #expect(throws: Never.self) { try authorizer.check(.inference, key: "admin", peerIP: nil) }
        #expect(throws: Never.self) { try authorizer.check(.admin, key: "admin", peerIP: nil) }
        for (access, key) in [(Access.inference, "nope"), (.admin, "user"), (.admin, nil)] as [(Access, String?)] {
            do throws(GatewayError) {
                try authorizer.check(access, key: key, peerIP: "127.0.0.1")
                Issue.record("\(access) with \(key ?? "no key") was let through")
            } catch {
                #expect(error.status == 401)
                #expect(error.code.openAI == "invalid_api_key")
                #expect(error.headers.contains { $0 == ("WWW-Authenticate", "Bearer") })
            }
        }
        #expect(Authorizer.bearer("Bearer  abc ") == "abc")
        #expect(Authorizer.bearer("basic abc") == nil)
        #expect(ConstantTime.equals("abc", "abc"))
        #expect(!ConstantTime.equals("abc", "abd"))
        #expect(!ConstantTime.equals("abc", "abcd"))
        #expect(!ConstantTime.equals("", "a"))
    }
}
