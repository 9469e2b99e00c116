import GatewayCore
import GatewayObservability
import GatewayOpenAI
import GatewayUpstream
import Logging
import NIOCore
import NIOHTTP1

/// Runs one call: executes the ``AttemptStateMachine``'s actions (choose, send, wait,
/// relay) with the transport, and turns what workers answer into the call's answer.
///
/// Confined to the call's event loop, like the exchanges it starts.
final class CallDriver: WorkerAnswerReceiver {
    private enum Phase {
        /// Waiting for an admission slot.
        case admitting
        /// Attempts under way; nothing reached the receiver yet.
        case attempting
        /// A `.stream` answer went to the receiver: events follow.
        case streaming
        case finished
    }

    /// What the current attempt's answer body is being read for.
    private enum Reading {
        case nothing
        /// A failing answer kept for the client, should no other worker do better.
        case kept(WorkerAnswerHead, ByteBuffer)
        /// An answer read whole before it is delivered.
        case whole(WorkerAnswerHead, ByteBuffer)
        /// A `/generate` answer of an OpenAI-only worker, read whole to be translated.
        case translated(WorkerAnswerHead, ByteBuffer)
    }

    private let engine: InferenceEngine
    private let call: InferenceCall
    private let loop: any EventLoop
    private var receiver: (any InferenceReceiver)?
    private var record: RequestRecord
    private var phase = Phase.admitting
    private var permit: AdmissionPermit?
    private var request: InferenceRequest?
    private var routing = RoutingRequest()
    private var machine: AttemptStateMachine
    private let deadline: NIODeadline
    private var candidate: RouteCandidate?
    private var exchange: Exchange?
    private var backoff: Scheduled<Void>?
    /// When the current attempt was sent (its load is held until it ends).
    private var attemptStarted: ContinuousClock.Instant?
    /// The current attempt's watch on its worker's cut signal (a drain that timed out),
    /// held for as long as its load.
    private var cutObservation: WorkerCutObservation?
    /// Attempts sent so far: a cut signalled for an attempt that has ended is ignored.
    private var attemptsSent = 0
    private var reading = Reading.nothing
    /// The answer kept from a failed attempt.
    private var kept: (head: WorkerAnswerHead, body: ByteBuffer, worker: WorkerID)?
    /// `/generate` sent as `/v1/completions` to an OpenAI-only worker.
    private var translating = false
    private var translator: GenerateTranslation.StreamTranslator?
    private var isPaused = false
    /// The wait for an admission slot, cancelled with the call.
    private var admissionWait: Task<Void, Never>?

    init(engine: InferenceEngine, call: InferenceCall, loop: any EventLoop, route: RouteMetrics, arrived: ContinuousClock.Instant, receiver: any InferenceReceiver) {
        self.engine = engine
        self.call = call
        self.loop = loop
        self.receiver = receiver
        self.record = RequestRecord(route: route, metrics: engine.metrics, isInference: true, started: arrived)
        self.record.requestID = call.requestID
        let timeout = engine.configuration.requestTimeout
        self.deadline = .now() + TimeAmount(timeout)
        self.machine = AttemptStateMachine(configuration: engine.configuration.attempts, deadline: arrived + timeout)
    }

    // MARK: Start

    func start() {
        if let limiter = engine.rateLimiter, let wait = limiter.take(call.principal) {
            let seconds = Int(wait.seconds.rounded(.up))
            answerFailure(GatewayError.openAI(429, "rate_limited", "too many requests for this client; retry in \(seconds)s").retrying(after: seconds))
            return
        }
        guard let admission = engine.admission else {
            admitted()
            return
        }
        if let permit = admission.tryAcquire() {
            self.permit = permit
            admitted()
            return
        }
        // Every slot is taken: wait in the admission queue, then continue on this loop.
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        admissionWait = Task {
            let result: Result<AdmissionPermit, AdmissionController.Refusal>
            do throws(AdmissionController.Refusal) {
                result = .success(try await admission.acquire())
            } catch {
                result = .failure(error)
            }
            loop.execute {
                let driver = bound.value
                switch result {
                case .success(let permit):
                    guard driver.phase == .admitting else {
                        permit.release()
                        return
                    }
                    driver.permit = permit
                    driver.admitted()
                case .failure(let refusal):
                    guard driver.phase == .admitting else { return }
                    driver.answerFailure(driver.engine.refusal(refusal))
                }
            }
        }
    }

    private func admitted() {
        admissionWait = nil
        phase = .attempting
        let configuration = engine.configuration
        do throws(GatewayError) {
            let parsed: InferenceRequest
            switch call.input {
            case .body(let body, let route):
                parsed = try InferenceRequest.parse(
                    body, route: route, wantText: configuration.wantsRoutingText, maxTextBytes: configuration.maxRoutingTextBytes
                )
            case .generate(let typed):
                parsed = try OpenAIGenerate.routing(for: typed, wantText: configuration.wantsRoutingText, maxTextBytes: configuration.maxRoutingTextBytes)
            }
            request = parsed
            routing = RoutingRequest(
                text: parsed.routingText, key: call.routingKey ?? parsed.bodyKey,
                explanation: configuration.explainRouting || engine.logger.logLevel <= .debug ? RouteExplanationBox() : nil
            )
            // The model label until a worker is chosen: bounded to the models served.
            record.model = engine.metrics.modelLabel(parsed.model)
        } catch {
            answerFailure(error)
            return
        }
        perform(machine.start())
    }

    // MARK: The door's controls

    func cancel() {
        guard phase != .finished else { return }
        receiver = nil
        admissionWait?.cancel()
        exchange?.cancel()
        exchange = nil
        backoff?.cancel()
        endAttempt()
        _ = machine.cancelled()
        finish(status: phase == .streaming ? streamStatus : 499, aborted: true)
    }

    func pause() {
        isPaused = true
        exchange?.pause()
    }

    func resume() {
        isPaused = false
        exchange?.resume()
    }

    // MARK: Executing the machine

    private func perform(_ action: AttemptStateMachine.Action) {
        note(action)
        proceed(action.next)
    }

    /// The breaker verdict and the passive-health mark of an action, on the current worker.
    private func note(_ action: AttemptStateMachine.Action) {
        if let verdict = action.breaker, let candidate {
            let transition = verdict == .success ? candidate.handle.recordSuccess() : candidate.handle.recordFailure(at: .now)
            if let transition {
                engine.logger.notice("circuit breaker \(transition)", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)"])
            }
        }
        if action.markUnhealthy, let candidate, engine.registry.recordConnectionRefused(candidate.id) == .becameUnhealthy {
            engine.logger.warning("worker refused a connection; marked unhealthy", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)"])
        }
    }

    private func proceed(_ next: AttemptStateMachine.Next) {
        switch next {
        case .choose(let excluded):
            choose(excluding: excluded)
        case .send(let attempt, _):
            send(attempt: attempt)
        case .wait(let delay):
            let bound = NIOLoopBound(self, eventLoop: loop)
            backoff = loop.scheduleTask(in: TimeAmount(delay)) {
                let driver = bound.value
                driver.backoff = nil
                driver.perform(driver.machine.waited())
            }
        case .keepAnswer, .gatherWhole:
            // The body is read by the exchange's callbacks (see `workerAnswered`).
            break
        case .relay:
            break
        case .deliver:
            guard case .whole(let head, let body) = reading else { return }
            reading = .nothing
            deliverWhole(status: head.status, headers: head.headers, body: body)
        case .cutStream(let outcome):
            if case .workerFailed(let failure, let worker) = outcome {
                cutStream(.openAI(502, "upstream_error", "worker \(worker) failed mid-stream: \(failure.message)"))
            } else {
                cutStream(Self.error(for: outcome))
            }
        case .fail(let outcome):
            fail(outcome)
        case .stop:
            break
        }
    }

    private func choose(excluding excluded: Set<WorkerID>) {
        guard let request else { return }
        switch engine.selector.select(model: request.model, request: routing, excluding: excluded) {
        case .success(let chosen):
            candidate = chosen
            if let explanation = routing.explanation?.explanation {
                engine.logger.debug(
                    "routed",
                    metadata: [
                        "request_id": "\(call.requestID)", "worker": "\(explanation.winner)", "rule": "\(explanation.rule)",
                        "blocks": "\(explanation.blocks)", "bound": "\(explanation.capacity)",
                        "candidates": "\(explanation.candidates.map { "\($0.url) m=\($0.matched) l=\($0.load)" }.joined(separator: ", "))",
                    ]
                )
            }
            record.model = chosen.modelID
            record.workerID = chosen.id.description
            perform(machine.chose(chosen.id))
        case .failure(let failure):
            perform(machine.foundNoWorker(failure))
        }
    }

    private func send(attempt: Int) {
        guard let candidate, let request else { return }
        if attempt > 0 {
            engine.metrics.retries.labels(request.route.rawValue).increment()
            record.retries = machine.retries
            engine.logger.debug("retrying on another worker", metadata: ["request_id": "\(call.requestID)", "attempt": "\(attempt + 1)"])
        }
        let path: String
        let body: ByteBuffer
        do throws(GatewayError) {
            switch call.input {
            case .body(let original, let route):
                translating = route == .generate && candidate.runtime == .openai
                if translating {
                    path = InferenceRoute.completions.rawValue
                    body = try GenerateTranslation.completionsBody(fromGenerate: original, model: candidate.modelID)
                } else {
                    path = route.rawValue
                    body = original
                }
            case .generate(let typed):
                path = request.route.rawValue
                body = try OpenAIGenerate.body(for: typed)
            }
        } catch {
            // The request cannot be put to this worker (a bad /generate body): the client's fault.
            _ = machine.cancelled()
            answerFailure(error)
            return
        }
        let headers = ForwardedHeaders.make(for: call, workerHasKey: candidate.apiKey != nil, gatewayChecksKeys: engine.configuration.gatewayChecksKeys)
        let workerRequest = WorkerRequest(
            method: .POST, url: candidate.url, path: path, headers: headers, body: body, apiKey: candidate.apiKey,
            wholeAnswerLimit: engine.configuration.attempts.wholeAnswerLimit
        )
        candidate.handle.beginRequest()
        attemptStarted = .now
        attemptsSent += 1
        let attempt = attemptsSent
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        // A deleted worker whose drain times out tells its running requests to end.
        cutObservation = candidate.handle.onCut { cut in
            loop.execute { bound.value.workerCut(cut, attempt: attempt) }
        }
        reading = .nothing
        exchange = engine.transport.start(workerRequest, on: loop, deadline: deadline, receiver: self)
        if isPaused { exchange?.pause() }
    }

    /// The current attempt is over: its worker's load and duration.
    private func endAttempt() {
        guard let started = attemptStarted, let candidate else { return }
        attemptStarted = nil
        cutObservation?.cancel()
        cutObservation = nil
        candidate.handle.endRequest()
        engine.metrics.upstreamDuration.labels(candidate.id.description).observe(ContinuousClock.now - started)
    }

    /// The worker of the running attempt was deleted and its drain timed out: the call
    /// ends now, with an error event after what a stream already relayed, or an error
    /// answer when nothing reached the client yet. Nothing is retried: the drain deadline
    /// is the operator's limit on this work.
    private func workerCut(_ cut: WorkerCut, attempt: Int) {
        guard attempt == attemptsSent, attemptStarted != nil, phase != .finished, let candidate else { return }
        engine.logger.warning(
            "request cut: its worker was deleted and the drain timed out",
            metadata: ["request_id": "\(call.requestID)", "worker_id": "\(candidate.id)", "url": "\(candidate.url)"]
        )
        exchange?.cancel()
        exchange = nil
        endAttempt()
        reading = .nothing
        _ = machine.cancelled()
        let error = GatewayError.openAI(503, cut.code, cut.message)
        if phase == .streaming {
            cutStream(error)
        } else {
            answerFailure(error)
        }
    }

    // MARK: What the worker answers

    func workerAnswered(_ head: WorkerAnswerHead, whole: ByteBuffer?) {
        guard phase == .attempting, let candidate else { return }
        let action = machine.answered(.init(status: head.status, isEventStream: head.isEventStream, contentLength: head.contentLength), now: .now)
        note(action)
        switch action.next {
        case .keepAnswer:
            if let whole {
                keep(head, whole, worker: candidate.id)
            } else {
                reading = .kept(head, ByteBuffer())
            }
        case .gatherWhole, .relay:
            if translating && (200..<300).contains(head.status) && !head.isEventStream {
                // The client's answer, translated once it is all in.
                reading = .translated(head, whole ?? ByteBuffer())
                if whole != nil { translateWhole() }
                return
            }
            if action.next == .gatherWhole {
                reading = .whole(head, whole ?? ByteBuffer())
                if whole != nil {
                    exchange = nil
                    endAttempt()
                    proceed(machine.gathered().next)
                }
                return
            }
            phase = .streaming
            streamStatus = head.status
            if translating && head.isEventStream && (200..<300).contains(head.status) {
                translator = GenerateTranslation.StreamTranslator(requestID: call.requestID)
            }
            var headers = head.headers
            if translator != nil { headers.remove(name: "content-length") }
            addExplanation(to: &headers)
            receiver?.inferenceAnswered(.stream(status: head.status, headers: headers, isEventStream: head.isEventStream, worker: candidate.id))
        default:
            proceed(action.next)
        }
    }

    /// The status of the streamed answer (for the record).
    private var streamStatus = 200

    func workerSent(_ part: WorkerAnswerPart) {
        switch reading {
        case .kept(let head, var body):
            reading = .nothing
            guard append(part, to: &body, limit: engine.configuration.maxKeptAnswerBytes) else {
                // Longer than is worth keeping: what was read stands for it.
                exchange?.cancel()
                exchange = nil
                endAttempt()
                keep(head, body, worker: candidate!.id)
                return
            }
            reading = .kept(head, body)
        case .whole(let head, var body):
            reading = .nothing
            _ = append(part, to: &body, limit: .max)
            reading = .whole(head, body)
        case .translated(let head, var body):
            reading = .nothing
            guard append(part, to: &body, limit: engine.configuration.maxTranslatedAnswerBytes) else {
                exchange?.cancel()
                exchange = nil
                endAttempt()
                answerFailure(GatewayError.openAI(502, "upstream_error", "worker \(candidate!.id) answered more than \(engine.configuration.maxTranslatedAnswerBytes) bytes"))
                return
            }
            reading = .translated(head, body)
        case .nothing:
            guard phase == .streaming else { return }
            record.firstByte()
            switch part {
            case .event(let event):
                if translator != nil {
                    translator!.translate(event) { receiver?.inferenceEvent(.event($0)) }
                } else {
                    receiver?.inferenceEvent(.event(event))
                }
            case .bytes(let bytes):
                receiver?.inferenceEvent(.bytes(bytes))
            }
        }
    }

    func workerFinished() {
        exchange = nil
        endAttempt()
        switch reading {
        case .kept(let head, let body):
            keep(head, body, worker: candidate!.id)
        case .whole:
            proceed(machine.gathered().next)
        case .translated:
            translateWhole()
        case .nothing:
            guard phase == .streaming else { return }
            translator?.finish { receiver?.inferenceEvent(.event($0)) }
            _ = machine.relayEnded()
            receiver?.inferenceEvent(.done)
            finish(status: streamStatus)
        }
    }

    func workerFailed(_ failure: WorkerFailure, afterHead: Bool) {
        exchange = nil
        endAttempt()
        if case .translated = reading {
            reading = .nothing
            _ = machine.failed(failure, now: .now)
            answerFailure(GatewayError.openAI(502, "upstream_error", "worker \(candidate!.id) failed mid-answer: \(failure.message)"))
            return
        }
        reading = .nothing
        if phase == .streaming, let candidate {
            engine.logger.warning("worker failed mid-answer", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)", "error": "\(failure.message)"])
        }
        perform(machine.failed(failure, now: .now))
    }

    // MARK: Answers

    private func keep(_ head: WorkerAnswerHead, _ body: ByteBuffer, worker: WorkerID) {
        reading = .nothing
        kept = (head, body, worker)
        endAttempt()
        exchange = nil
        perform(machine.keptAnswer(now: .now))
    }

    private func translateWhole() {
        guard case .translated(let head, let body) = reading, let candidate else { return }
        reading = .nothing
        exchange = nil
        endAttempt()
        _ = machine.relayEnded()
        let latency = (ContinuousClock.now - record.started).seconds
        guard let translated = GenerateTranslation.generateBody(fromCompletions: body, requestID: call.requestID, latency: latency) else {
            answerFailure(GatewayError.openAI(502, "upstream_error", "worker \(candidate.id) answered /v1/completions with an unexpected body"))
            return
        }
        // The worker's own headers stay (as on an untranslated answer); the body's change.
        var headers = head.headers
        headers.remove(name: "content-length")
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        deliverWhole(status: 200, headers: headers, body: translated)
    }

    private func append(_ part: WorkerAnswerPart, to body: inout ByteBuffer, limit: Int) -> Bool {
        switch part {
        case .bytes(let bytes):
            guard body.readableBytes + bytes.readableBytes <= limit else { return false }
            body.writeImmutableBuffer(bytes)
        case .event(let event):
            guard body.readableBytes + event.data.readableBytes + 16 <= limit else { return false }
            event.write(into: &body)
        }
        return true
    }

    /// `X-Gateway-Route` when asked for and the policy explained its pick.
    private func addExplanation(to headers: inout HTTPHeaders) {
        guard engine.configuration.explainRouting, let explanation = routing.explanation?.explanation else { return }
        headers.replaceOrAdd(name: "X-Gateway-Route", value: explanation.headerValue)
    }

    private func deliverWhole(status: Int, headers: HTTPHeaders, body: ByteBuffer) {
        var headers = headers
        addExplanation(to: &headers)
        guard let candidate else { return }
        let receiver = self.receiver
        finish(status: status)
        receiver?.inferenceAnswered(.whole(status: status, headers: headers, body: body, worker: candidate.id))
    }

    private func fail(_ outcome: AttemptStateMachine.Outcome) {
        if case .keptAnswer = outcome, let kept {
            self.kept = nil
            let receiver = self.receiver
            finish(status: kept.head.status)
            receiver?.inferenceAnswered(.whole(status: kept.head.status, headers: kept.head.headers, body: kept.body, worker: kept.worker))
            return
        }
        answerFailure(Self.error(for: outcome))
    }

    /// The call ends with the gateway's own error (nothing was streamed).
    private func answerFailure(_ error: GatewayError) {
        guard phase != .finished else { return }
        let receiver = self.receiver
        finish(status: error.status)
        receiver?.inferenceAnswered(.failed(error))
    }

    /// The stream ends with `error`, after what the client already has.
    private func cutStream(_ error: GatewayError) {
        let receiver = self.receiver
        finish(status: streamStatus, aborted: true)
        receiver?.inferenceEvent(.workerFailed(error))
    }

    /// The call is over: its record, its admission slot.
    private func finish(status: Int, aborted: Bool = false) {
        guard phase != .finished else { return }
        phase = .finished
        receiver = nil
        cutObservation?.cancel()
        cutObservation = nil
        backoff?.cancel()
        backoff = nil
        permit?.release()
        permit = nil
        record.retries = machine.retries
        record.finish(status: status, aborted: aborted, metrics: engine.metrics, logger: engine.logger)
    }

    static func error(for outcome: AttemptStateMachine.Outcome) -> GatewayError {
        switch outcome {
        case .noWorker(let failure):
            return GatewayError(failure)
        case .workerFailed(.timedOut(let message), let worker):
            return .openAI(504, "upstream_timeout", "worker \(worker) did not answer in time: \(message)")
        case .workerFailed(let failure, let worker):
            return .openAI(502, "upstream_error", "worker \(worker) failed: \(failure.message)")
        case .keptAnswer(let worker):
            return .openAI(502, "upstream_error", "worker \(worker) failed")
        case .cancelled:
            return .clientClosed
        }
    }
}
