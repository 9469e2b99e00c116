import GatewayJSON
import NIOCore

/// SGLang's `/generate` for workers that only speak OpenAI (llama.cpp, vLLM …):
/// the request becomes a `/v1/completions` request, the answer (whole or
/// streamed) becomes SGLang's `{text, output_ids?, meta_info}` shape.
enum GenerateTranslation {
    /// The `/v1/completions` body for a `/generate` body.
    static func completionsBody(fromGenerate body: ByteBuffer, model: String) throws(GatewayError) -> ByteBuffer {
        let request: JSONObject
        do {
            guard let object = try JSONParser.parse(body.readableBytesView).objectValue else {
                throw GatewayError.openAI(400, "invalid_json", "request body must be a JSON object")
            }
            request = object
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.openAI(400, "invalid_json", "request body is not valid JSON: \(error)")
        }
        var out = JSONObject()
        out["model"] = .string(model)
        if let text = request["text"], text != .null {
            guard text.stringValue != nil || text.arrayValue?.allSatisfy({ $0.stringValue != nil }) == true else {
                throw GatewayError.openAI(400, "invalid_field", "'text' must be a string or an array of strings")
            }
            out["prompt"] = text
        } else if let ids = request["input_ids"], ids != .null {
            guard ids.arrayValue?.allSatisfy({ $0.intValue != nil }) == true else {
                throw GatewayError.openAI(400, "invalid_field", "'input_ids' must be an array of integers for an OpenAI-compatible worker")
            }
            out["prompt"] = ids
        } else {
            throw GatewayError.openAI(400, "unsupported_input", "this worker speaks OpenAI only: give 'text' or 'input_ids' (not 'input_embeds')")
        }
        let sampling = request["sampling_params"]?.objectValue ?? JSONObject()
        let renames: [(String, String)] = [
            ("max_new_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
            ("min_p", "min_p"), ("stop", "stop"), ("seed", "seed"), ("frequency_penalty", "frequency_penalty"),
            ("presence_penalty", "presence_penalty"), ("repetition_penalty", "repetition_penalty"), ("n", "n"),
            ("ignore_eos", "ignore_eos"),
        ]
        for (from, to) in renames {
            if let value = sampling[from], value != .null { out[to] = value }
        }
        let stream = request["stream"]?.boolValue ?? false
        if stream {
            out["stream"] = .bool(true)
            out["stream_options"] = .object(["include_usage": .bool(true)])
        }
        return ByteBuffer(bytes: JSONValue.object(out).jsonBytes)
    }

    /// SGLang's finish_reason object for an OpenAI finish_reason.
    static func finishReason(_ reason: JSONValue?, completionTokens: Int) -> JSONValue {
        switch reason?.stringValue {
        case "length": return .object(["type": .string("length"), "length": .int(Int64(completionTokens))])
        case "stop": return .object(["type": .string("stop"), "matched": .null])
        case let other?: return .object(["type": .string(other)])
        case nil: return .null
        }
    }

    /// A whole `/v1/completions` answer as a `/generate` answer.
    static func generateBody(fromCompletions body: ByteBuffer, requestID: String, latency: Double) -> ByteBuffer? {
        guard let answer = try? JSONParser.parse(body.readableBytesView).objectValue,
            let choice = answer["choices"]?.arrayValue?.first
        else { return nil }
        let usage = answer["usage"]
        let completion = Int(usage?["completion_tokens"]?.intValue ?? 0)
        var json = JSONWriter()
        json.beginObject()
        json.field("text", choice["text"]?.stringValue ?? "")
        json.key("meta_info")
        json.beginObject()
        json.field("id", answer["id"]?.stringValue ?? requestID)
        json.field("finish_reason", finishReason(choice["finish_reason"], completionTokens: completion))
        json.field("prompt_tokens", usage?["prompt_tokens"]?.intValue ?? 0)
        json.field("completion_tokens", completion)
        json.field("cached_tokens", usage?["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0)
        json.field("e2e_latency", latency)
        json.endObject()
        json.endObject()
        return ByteBuffer(bytes: json.bytes)
    }

    /// Turns a stream of `/v1/completions` events into `/generate` events
    /// (cumulative text, as SGLang streams it).
    struct StreamTranslator {
        let requestID: String
        private var parser = ServerSentEventParser()
        private var text = ""
        private var id: String?
        private var chunks = 0
        private var promptTokens = 0
        private var completionTokens: Int?
        /// The finishing event is held until usage (sent after it) is known.
        private var finish: JSONValue?
        private(set) var isDone = false

        init(requestID: String) {
            self.requestID = requestID
        }

        /// Feeds worker bytes; returns the bytes to send to the client.
        mutating func feed(_ buffer: ByteBuffer) -> ByteBuffer {
            var out = ByteBuffer()
            for data in parser.feed(buffer) {
                if data == "[DONE]" {
                    flushFinal(into: &out)
                    out.writeImmutableBuffer(ServerSentEvent.done)
                    isDone = true
                    continue
                }
                guard let event = try? JSONParser.parse(data).objectValue else { continue }
                if event["error"] != nil {
                    // Relay worker errors as they are.
                    out.writeImmutableBuffer(ServerSentEvent.data(data.utf8))
                    continue
                }
                id = id ?? event["id"]?.stringValue
                if let usage = event["usage"], usage != .null {
                    promptTokens = Int(usage["prompt_tokens"]?.intValue ?? 0)
                    completionTokens = usage["completion_tokens"]?.intValue.map { Int($0) }
                }
                guard let choice = event["choices"]?.arrayValue?.first else { continue }
                let delta = choice["text"]?.stringValue ?? ""
                text += delta
                if !delta.isEmpty { chunks += 1 }
                if let reason = choice["finish_reason"], reason != .null {
                    finish = reason
                } else if !delta.isEmpty {
                    writeEvent(finishReason: .null, into: &out)
                }
            }
            return out
        }

        /// Call when the worker's stream ended; flushes a held final event.
        mutating func finishStream() -> ByteBuffer {
            var out = ByteBuffer()
            if !isDone {
                flushFinal(into: &out)
                out.writeImmutableBuffer(ServerSentEvent.done)
                isDone = true
            }
            return out
        }

        private mutating func flushFinal(into out: inout ByteBuffer) {
            guard let reason = finish else { return }
            finish = nil
            writeEvent(finishReason: GenerateTranslation.finishReason(reason, completionTokens: completionTokens ?? chunks), into: &out)
        }

        private func writeEvent(finishReason: JSONValue, into out: inout ByteBuffer) {
            var json = JSONWriter()
            json.beginObject()
            json.field("text", text)
            json.key("meta_info")
            json.beginObject()
            json.field("id", id ?? requestID)
            json.field("finish_reason", finishReason)
            json.field("prompt_tokens", promptTokens)
            json.field("completion_tokens", finishReason == .null ? chunks : (completionTokens ?? chunks))
            json.endObject()
            json.endObject()
            out.writeImmutableBuffer(ServerSentEvent.data(json.bytes))
        }
    }
}
