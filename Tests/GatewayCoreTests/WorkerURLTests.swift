import Testing
import GatewayCore

@Suite("WorkerURL")
struct WorkerURLTests {
    @Test func plainHTTPWithPort() throws {
        let url = try WorkerURL("http://10.0.0.5:8000")
        #expect(url.scheme == .http)
        #expect(url.host == "10.0.0.5")
        #expect(url.port == 8000)
        #expect(url.path == "")
        #expect(url.effectivePort == 8000)
        #expect(url.description == "http://10.0.0.5:8000")
    }

    @Test func httpsWithoutPort() throws {
        let url = try WorkerURL("https://worker.example.com")
        #expect(url.scheme == .https)
        #expect(url.host == "worker.example.com")
        #expect(url.port == nil)
        #expect(url.effectivePort == 443)
        #expect(url.description == "https://worker.example.com")
    }

    @Test func hostPortMeansHTTP() throws {
        let url = try WorkerURL("localhost:30000")
        #expect(url.scheme == .http)
        #expect(url.host == "localhost")
        #expect(url.port == 30000)
        #expect(url.description == "http://localhost:30000")

        let withPath = try WorkerURL("gpu-1.internal:9000/prefix/api//")
        #expect(withPath.description == "http://gpu-1.internal:9000/prefix/api")
    }

    @Test func ipv6() throws {
        let bare = try WorkerURL("[::1]:8000")
        #expect(bare.scheme == .http)
        #expect(bare.host == "[::1]")
        #expect(bare.port == 8000)
        #expect(bare.description == "http://[::1]:8000")
        #expect(try WorkerURL("http://[::1]:8000") == bare)

        let upper = try WorkerURL("HTTPS://[FE80::ABCD:1]:443/")
        #expect(upper.host == "[fe80::abcd:1]")
        #expect(upper.port == nil)
        #expect(upper.description == "https://[fe80::abcd:1]")

        let mapped = try WorkerURL("http://[::ffff:10.0.0.1]")
        #expect(mapped.description == "http://[::ffff:10.0.0.1]")
    }

    @Test func uppercaseSchemeAndHostNormalisedButNotPath() throws {
        let url = try WorkerURL("HTTP://Worker.EXAMPLE.com:8080/V1/Models/")
        #expect(url.scheme == .http)
        #expect(url.host == "worker.example.com")
        #expect(url.path == "/V1/Models")
        #expect(url.description == "http://worker.example.com:8080/V1/Models")
    }

    @Test func defaultPortsDropped() throws {
        #expect(try WorkerURL("http://host:80").port == nil)
        #expect(try WorkerURL("http://host:80").description == "http://host")
        #expect(try WorkerURL("https://host:443").port == nil)
        #expect(try WorkerURL("https://host:443").description == "https://host")
        #expect(try WorkerURL("host:80").description == "http://host")
        // The other scheme's default port is not a default here.
        #expect(try WorkerURL("http://host:443").description == "http://host:443")
        #expect(try WorkerURL("https://host:80").description == "https://host:80")
        #expect(try WorkerURL("http://host:443").effectivePort == 443)
        #expect(try WorkerURL("http://host").effectivePort == 80)
    }

    @Test func trailingSlashesRemovedPathPrefixKept() throws {
        #expect(try WorkerURL("http://host:8000/").description == "http://host:8000")
        #expect(try WorkerURL("http://host:8000///").path == "")
        #expect(try WorkerURL("http://host:8000/v1").path == "/v1")
        #expect(try WorkerURL("http://host:8000/v1/").path == "/v1")
        #expect(try WorkerURL("http://host:8000/a/b/c//").description == "http://host:8000/a/b/c")
        #expect(try WorkerURL("http://host/api%20x/~user").path == "/api%20x/~user")
    }

    @Test func surroundingWhitespaceTrimmed() throws {
        #expect(try WorkerURL("  http://host:8000 \n").description == "http://host:8000")
        #expect(try WorkerURL("\thost:8000\n").description == "http://host:8000")
        #expect(try WorkerURL("\rhost:8000\r").description == "http://host:8000")
    }

    /// "\r\n" is one Character in Swift, so a Character-based trim misses it.
    @Test func surroundingCRLFTrimmed() throws {
        #expect(try WorkerURL("http://host:8000\r\n").description == "http://host:8000")
        #expect(try WorkerURL("\r\nhost:8000").description == "http://host:8000")
        #expect(try WorkerURL(" \r\n\thttp://host:8000 \r\n").description == "http://host:8000")
    }

    @Test func portBounds() throws {
        #expect(try WorkerURL("http://host:1").port == 1)
        #expect(try WorkerURL("http://host:65535").port == 65535)
        #expect(try WorkerURL("http://host:08000").port == 8000)
    }

    @Test func appendingEndpoints() throws {
        let url = try WorkerURL("http://host:8000/prefix/")
        #expect(url.appending("/health") == "http://host:8000/prefix/health")
        #expect(url.appending("v1/models") == "http://host:8000/prefix/v1/models")
    }

    @Test(arguments: [
        "",
        "   ",
        "not a url",
        "ftp://x",
        "ftp://host:21",
        "http://",
        "https://",
        "://host:80",
        "http://:80",
        "http://host:0",
        "http://host:00000",
        "http://host:65536",
        "http://host:99999",
        "http://host:123456",
        "http://host:",
        "http://host:abc",
        "http://host:+80",
        "http://host:-1",
        "http://host:8000:9000",
        "http://user:pw@host",
        "http://user@host:8000",
        "user:pw@host:8000",
        "http://host:8000?x=1",
        "http://host:8000/path?x=1",
        "http://host:8000#frag",
        "http://host:8000/#",
        "http://ho st:8000",
        "http://host:8000/a b",
        "http://host\t:8000",
        "http://hôst:8000",
        "http://host:8000/päth",
        "http://host:8000/\u{7F}",
        "host",
        "localhost",
        "worker.example.com",
        "host:",
        "host:http",
        "http:/host:8000",
        "http//host:8000",
        "http://[::1",
        "http://[]:8000",
        "http://[::1]x",
        "http://[::1]:",
        "http://[::g]:8000",
        "http://[127.0.0.1]:8000",
        "[::1",
        "http://-host:8000",
        "http://host-:8000",
        "http://host..com:8000",
        "http://.host:8000",
        "http://host.:8000",
        "http://ho%73t:8000",
        "http://host:8000/a<b",
        "http://host:8000/a\"b",
    ])
    func rejects(raw: String) {
        do {
            let url = try WorkerURL(raw)
            Issue.record("\(raw.debugDescription) was accepted as \(url)")
        } catch {
            #expect(error.input == raw)
            #expect(!error.reason.isEmpty)
            #expect(error.description.contains(error.reason))
        }
    }

    @Test func rejectsOverlongInput() {
        let long = "http://host:8000/" + String(repeating: "a", count: 2100)
        #expect(throws: WorkerURLError.self) { try WorkerURL(long) }
        let longHost = "http://" + String(repeating: "a.", count: 130) + "com"
        #expect(throws: WorkerURLError.self) { try WorkerURL(longHost) }
    }

    @Test(arguments: [
        ("http://localhost:8000", [
            "HTTP://LOCALHOST:8000", "localhost:8000", "LocalHost:8000/", "http://localhost:8000/",
            "  http://localhost:8000//  ", "Http://LocalHost:8000", "http://localhost:08000",
        ]),
        ("http://example.com", ["http://example.com:80", "HTTP://EXAMPLE.COM:80/", "example.com:80", "http://Example.com/"]),
        ("https://example.com", ["https://example.com:443", "HTTPS://Example.COM:443/", "https://EXAMPLE.com//"]),
        ("http://[::1]:8000", ["[::1]:8000", "HTTP://[::1]:8000/", "http://[::1]:8000//"]),
        ("http://[::abcd]", ["http://[::ABCD]:80", "[::AbCd]:80/"]),
        ("http://10.0.0.5:8000/v1", ["10.0.0.5:8000/v1/", "HTTP://10.0.0.5:8000/v1//"]),
    ])
    func equivalentSpellingsAreEqual(canonical: String, spellings: [String]) throws {
        let reference = try WorkerURL(canonical)
        #expect(reference.description == canonical)
        for spelling in spellings {
            let url = try WorkerURL(spelling)
            #expect(url == reference, "\(spelling) vs \(canonical)")
            #expect(url.hashValue == reference.hashValue, "hash of \(spelling)")
            #expect(url.description == canonical, "description of \(spelling)")
        }
        var set: Set<WorkerURL> = [reference]
        for spelling in spellings { set.insert(try WorkerURL(spelling)) }
        #expect(set.count == 1)
    }

    @Test func differentURLsDiffer() throws {
        let urls = try [
            "http://host:8000", "https://host:8000", "http://host:8001", "http://other:8000",
            "http://host:8000/v1", "http://host:8000/V1", "http://host", "http://host:443",
        ].map { try WorkerURL($0) }
        #expect(Set(urls).count == urls.count)
    }
}
