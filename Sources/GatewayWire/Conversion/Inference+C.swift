import GatewayProto

// Swift <-> protobuf-c for inference.proto.

extension Wire.ChatMessage {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__ChatMessage> {
        let m = arena.message(modelgateway__v1__chat_message__init)
        m.pointee.role = try arena.string(role, field: "ChatMessage.role")
        m.pointee.content = try arena.string(content, field: "ChatMessage.content")
        m.pointee.name = try arena.string(name, field: "ChatMessage.name")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__ChatMessage>) throws(WireError) {
        self.init(
            role: try CRead.string(m.pointee.role, field: "ChatMessage.role"),
            content: try CRead.string(m.pointee.content, field: "ChatMessage.content"),
            name: try CRead.string(m.pointee.name, field: "ChatMessage.name")
        )
    }
}

extension Wire.SamplingParams {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__SamplingParams> {
        let m = arena.message(modelgateway__v1__sampling_params__init)
        if let maxTokens {
            m.pointee.max_tokens_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__MAX_TOKENS_OPT_MAX_TOKENS
            m.pointee.max_tokens = maxTokens
        }
        if let temperature {
            m.pointee.temperature_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE
            m.pointee.temperature = temperature
        }
        if let topP {
            m.pointee.top_p_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__TOP_P_OPT_TOP_P
            m.pointee.top_p = topP
        }
        if let topK {
            m.pointee.top_k_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__TOP_K_OPT_TOP_K
            m.pointee.top_k = topK
        }
        if let seed {
            m.pointee.seed_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__SEED_OPT_SEED
            m.pointee.seed = seed
        }
        (m.pointee.n_stop, m.pointee.stop) = try arena.pointers(stop) { (s) throws(WireError) in
            try arena.string(s, field: "SamplingParams.stop")
        }
        if let frequencyPenalty {
            m.pointee.frequency_penalty_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__FREQUENCY_PENALTY_OPT_FREQUENCY_PENALTY
            m.pointee.frequency_penalty = frequencyPenalty
        }
        if let presencePenalty {
            m.pointee.presence_penalty_opt_case = MODELGATEWAY__V1__SAMPLING_PARAMS__PRESENCE_PENALTY_OPT_PRESENCE_PENALTY
            m.pointee.presence_penalty = presencePenalty
        }
        m.pointee.ignore_eos = ignoreEOS.cBoolean
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__SamplingParams>) throws(WireError) {
        let p = m.pointee
        self.init(
            maxTokens: p.max_tokens_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__MAX_TOKENS_OPT_MAX_TOKENS ? p.max_tokens : nil,
            temperature: p.temperature_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE ? p.temperature : nil,
            topP: p.top_p_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__TOP_P_OPT_TOP_P ? p.top_p : nil,
            topK: p.top_k_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__TOP_K_OPT_TOP_K ? p.top_k : nil,
            seed: p.seed_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__SEED_OPT_SEED ? p.seed : nil,
            stop: try CRead.strings(p.n_stop, p.stop, field: "SamplingParams.stop"),
            frequencyPenalty: p.frequency_penalty_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__FREQUENCY_PENALTY_OPT_FREQUENCY_PENALTY
                ? p.frequency_penalty : nil,
            presencePenalty: p.presence_penalty_opt_case == MODELGATEWAY__V1__SAMPLING_PARAMS__PRESENCE_PENALTY_OPT_PRESENCE_PENALTY
                ? p.presence_penalty : nil,
            ignoreEOS: CRead.bool(p.ignore_eos)
        )
    }
}

extension Wire.GenerateRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__GenerateRequest> {
        let m = arena.message(modelgateway__v1__generate_request__init)
        m.pointee.model = try arena.string(model, field: "GenerateRequest.model")
        switch input {
        case .text(let text):
            m.pointee.input_case = MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_TEXT
            m.pointee.text = try arena.string(text, field: "GenerateRequest.text")
        case .tokenIDs(let ids):
            let t = arena.message(modelgateway__v1__token_ids__init)
            (t.pointee.n_ids, t.pointee.ids) = arena.array(ids)
            m.pointee.input_case = MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_TOKEN_IDS
            m.pointee.token_ids = t
        case .chat(let messages):
            let c = arena.message(modelgateway__v1__chat_messages__init)
            (c.pointee.n_messages, c.pointee.messages) = try arena.pointers(messages) { (message) throws(WireError) in
                try message.make(in: arena)
            }
            m.pointee.input_case = MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_CHAT
            m.pointee.chat = c
        case nil:
            break
        }
        m.pointee.sampling = try sampling?.make(in: arena)
        m.pointee.stream = stream.cBoolean
        m.pointee.routing_key = try arena.string(routingKey, field: "GenerateRequest.routing_key")
        m.pointee.request_id = try arena.string(requestID, field: "GenerateRequest.request_id")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__GenerateRequest>) throws(WireError) {
        let p = m.pointee
        let input: Input?
        switch p.input_case {
        case MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_TEXT:
            input = .text(try CRead.string(p.text, field: "GenerateRequest.text"))
        case MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_TOKEN_IDS:
            input = .tokenIDs(p.token_ids.map { CRead.array($0.pointee.n_ids, $0.pointee.ids) } ?? [])
        case MODELGATEWAY__V1__GENERATE_REQUEST__INPUT_CHAT:
            input = .chat(
                try p.chat.map { (c) throws(WireError) in
                    try CRead.messages(c.pointee.n_messages, c.pointee.messages) { (message) throws(WireError) in
                        try Wire.ChatMessage(c: message)
                    }
                } ?? []
            )
        default:
            input = nil
        }
        self.init(
            model: try CRead.string(p.model, field: "GenerateRequest.model"),
            input: input,
            sampling: try p.sampling.map { (s) throws(WireError) in try Wire.SamplingParams(c: s) },
            stream: CRead.bool(p.stream),
            routingKey: try CRead.string(p.routing_key, field: "GenerateRequest.routing_key"),
            requestID: try CRead.string(p.request_id, field: "GenerateRequest.request_id")
        )
    }
}

extension Wire.Usage {
    func make(in arena: Arena) -> UnsafeMutablePointer<Modelgateway__V1__Usage> {
        let m = arena.message(modelgateway__v1__usage__init)
        m.pointee.prompt_tokens = promptTokens
        m.pointee.completion_tokens = completionTokens
        m.pointee.total_tokens = totalTokens
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__Usage>) {
        self.init(promptTokens: m.pointee.prompt_tokens, completionTokens: m.pointee.completion_tokens, totalTokens: m.pointee.total_tokens)
    }
}

extension Wire.GenerateChunk {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__GenerateChunk> {
        let m = arena.message(modelgateway__v1__generate_chunk__init)
        m.pointee.text = try arena.string(text, field: "GenerateChunk.text")
        (m.pointee.n_token_ids, m.pointee.token_ids) = arena.array(tokenIDs)
        m.pointee.index = index
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__GenerateChunk>) throws(WireError) {
        self.init(
            text: try CRead.string(m.pointee.text, field: "GenerateChunk.text"),
            tokenIDs: CRead.array(m.pointee.n_token_ids, m.pointee.token_ids),
            index: m.pointee.index
        )
    }
}

extension Wire.GenerateResult {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__GenerateResult> {
        let m = arena.message(modelgateway__v1__generate_result__init)
        m.pointee.text = try arena.string(text, field: "GenerateResult.text")
        (m.pointee.n_token_ids, m.pointee.token_ids) = arena.array(tokenIDs)
        m.pointee.finish_reason = try arena.string(finishReason, field: "GenerateResult.finish_reason")
        m.pointee.usage = usage?.make(in: arena)
        m.pointee.model = try arena.string(model, field: "GenerateResult.model")
        m.pointee.worker_id = try arena.string(workerID, field: "GenerateResult.worker_id")
        m.pointee.request_id = try arena.string(requestID, field: "GenerateResult.request_id")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__GenerateResult>) throws(WireError) {
        let p = m.pointee
        self.init(
            text: try CRead.string(p.text, field: "GenerateResult.text"),
            tokenIDs: CRead.array(p.n_token_ids, p.token_ids),
            finishReason: try CRead.string(p.finish_reason, field: "GenerateResult.finish_reason"),
            usage: p.usage.map { Wire.Usage(c: $0) },
            model: try CRead.string(p.model, field: "GenerateResult.model"),
            workerID: try CRead.string(p.worker_id, field: "GenerateResult.worker_id"),
            requestID: try CRead.string(p.request_id, field: "GenerateResult.request_id")
        )
    }
}

extension Wire.ModelInfo {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__ModelInfo> {
        let m = arena.message(modelgateway__v1__model_info__init)
        m.pointee.id = try arena.string(id, field: "ModelInfo.id")
        m.pointee.worker_count = workerCount
        m.pointee.healthy_worker_count = healthyWorkerCount
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__ModelInfo>) throws(WireError) {
        self.init(
            id: try CRead.string(m.pointee.id, field: "ModelInfo.id"),
            workerCount: m.pointee.worker_count,
            healthyWorkerCount: m.pointee.healthy_worker_count
        )
    }
}

extension Wire.ListModelsReply {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__ListModelsReply> {
        let m = arena.message(modelgateway__v1__list_models_reply__init)
        (m.pointee.n_models, m.pointee.models) = try arena.pointers(models) { (model) throws(WireError) in try model.make(in: arena) }
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__ListModelsReply>) throws(WireError) {
        self.init(models: try CRead.messages(m.pointee.n_models, m.pointee.models) { (model) throws(WireError) in try Wire.ModelInfo(c: model) })
    }
}

extension Wire.HealthReply {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__HealthReply> {
        let m = arena.message(modelgateway__v1__health_reply__init)
        m.pointee.status = try arena.string(status, field: "HealthReply.status")
        m.pointee.healthy_workers = healthyWorkers
        m.pointee.total_workers = totalWorkers
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__HealthReply>) throws(WireError) {
        self.init(
            status: try CRead.string(m.pointee.status, field: "HealthReply.status"),
            healthyWorkers: m.pointee.healthy_workers,
            totalWorkers: m.pointee.total_workers
        )
    }
}
