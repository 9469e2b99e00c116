import GatewayCore
import Testing

@Suite("Rate limiter")
struct RateLimiterTests {
    @Test("A bucket refills at the rate; the wait names the time to the next token")
    func refill() {
        let limiter = RateLimiter(rate: 2, burst: 2)
        let start = ContinuousClock.now
        #expect(limiter.take("k", now: start) == nil)
        #expect(limiter.take("k", now: start) == nil)
        let wait = limiter.take("k", now: start)
        #expect(wait == .milliseconds(500))
        #expect(limiter.take("k", now: start + .milliseconds(500)) == nil)
        #expect(limiter.take("other", now: start) == nil)
    }

    @Test("Past its bound the table drops the refilled buckets first")
    func refilledGoFirst() {
        let limiter = RateLimiter(rate: 1, burst: 1, maxKeys: 10)
        let start = ContinuousClock.now
        for i in 0..<10 { _ = limiter.take("key-\(i)", now: start) }
        #expect(limiter.count == 10)
        // 5 s later every bucket has refilled: the newcomer's insert drops them all.
        #expect(limiter.take("new", now: start + .seconds(5)) == nil)
        #expect(limiter.count == 1)
    }

    @Test("When nothing has refilled, the least recently used half goes; the newest keep their state")
    func leastRecentlyUsedGo() {
        let limiter = RateLimiter(rate: 1, burst: 1, maxKeys: 10)
        let start = ContinuousClock.now
        for i in 0..<11 {
            _ = limiter.take("key-\(i)", now: start + .milliseconds(i))
            #expect(limiter.count <= 10)
        }
        #expect(limiter.count == 5)
        // The newest key is still limited: its bucket was kept, not reset.
        #expect(limiter.take("key-10", now: start + .milliseconds(11)) != nil)
        // 1,000 more keys never grow the table past its bound.
        for i in 0..<1_000 { _ = limiter.take("more-\(i)", now: start + .milliseconds(20 + i % 500)) }
        #expect(limiter.count <= 10)
    }
}
