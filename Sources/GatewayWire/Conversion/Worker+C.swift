import GatewayProto

// Swift <-> protobuf-c for worker.proto and error.proto.

extension Wire.CallError {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__Error> {
        let m = arena.message(modelgateway__v1__error__init)
        m.pointee.code = try arena.string(code, field: "Error.code")
        m.pointee.message = try arena.string(message, field: "Error.message")
        m.pointee.http_status = httpStatus
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__Error>) throws(WireError) {
        self.init(
            code: try CRead.string(m.pointee.code, field: "Error.code"),
            message: try CRead.string(m.pointee.message, field: "Error.message"),
            httpStatus: m.pointee.http_status
        )
    }
}

extension Wire.JobStatus {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__JobStatus> {
        let m = arena.message(modelgateway__v1__job_status__init)
        m.pointee.job_type = Modelgateway__V1__JobType(rawValue: UInt32(bitPattern: jobType.rawValue))
        m.pointee.worker_url = try arena.string(workerURL, field: "JobStatus.worker_url")
        m.pointee.status = Modelgateway__V1__JobState(rawValue: UInt32(bitPattern: status.rawValue))
        m.pointee.message = try arena.string(message, field: "JobStatus.message")
        m.pointee.timestamp = timestamp
        m.pointee.in_flight = inFlight
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__JobStatus>) throws(WireError) {
        self.init(
            jobType: .init(rawValue: Int32(bitPattern: m.pointee.job_type.rawValue)),
            workerURL: try CRead.string(m.pointee.worker_url, field: "JobStatus.worker_url"),
            status: .init(rawValue: Int32(bitPattern: m.pointee.status.rawValue)),
            message: try CRead.string(m.pointee.message, field: "JobStatus.message"),
            timestamp: m.pointee.timestamp,
            inFlight: m.pointee.in_flight
        )
    }
}

extension Wire.HealthCheckSettings {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__HealthCheckSettings> {
        let m = arena.message(modelgateway__v1__health_check_settings__init)
        if let timeoutSecs {
            m.pointee.timeout_secs_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__TIMEOUT_SECS_OPT_TIMEOUT_SECS
            m.pointee.timeout_secs = timeoutSecs
        }
        if let intervalSecs {
            m.pointee.interval_secs_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__INTERVAL_SECS_OPT_INTERVAL_SECS
            m.pointee.interval_secs = intervalSecs
        }
        if let failureThreshold {
            m.pointee.failure_threshold_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__FAILURE_THRESHOLD_OPT_FAILURE_THRESHOLD
            m.pointee.failure_threshold = failureThreshold
        }
        if let successThreshold {
            m.pointee.success_threshold_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__SUCCESS_THRESHOLD_OPT_SUCCESS_THRESHOLD
            m.pointee.success_threshold = successThreshold
        }
        if let endpoint {
            m.pointee.endpoint_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__ENDPOINT_OPT_ENDPOINT
            m.pointee.endpoint = try arena.string(endpoint, field: "HealthCheckSettings.endpoint")
        }
        if let disabled {
            m.pointee.disabled_opt_case = MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__DISABLED_OPT_DISABLED
            m.pointee.disabled = disabled.cBoolean
        }
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__HealthCheckSettings>) throws(WireError) {
        let p = m.pointee
        self.init(
            timeoutSecs: p.timeout_secs_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__TIMEOUT_SECS_OPT_TIMEOUT_SECS ? p.timeout_secs : nil,
            intervalSecs: p.interval_secs_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__INTERVAL_SECS_OPT_INTERVAL_SECS ? p.interval_secs : nil,
            failureThreshold: p.failure_threshold_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__FAILURE_THRESHOLD_OPT_FAILURE_THRESHOLD
                ? p.failure_threshold : nil,
            successThreshold: p.success_threshold_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__SUCCESS_THRESHOLD_OPT_SUCCESS_THRESHOLD
                ? p.success_threshold : nil,
            endpoint: p.endpoint_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__ENDPOINT_OPT_ENDPOINT
                ? try CRead.string(p.endpoint, field: "HealthCheckSettings.endpoint") : nil,
            disabled: p.disabled_opt_case == MODELGATEWAY__V1__HEALTH_CHECK_SETTINGS__DISABLED_OPT_DISABLED ? CRead.bool(p.disabled) : nil
        )
    }
}

extension Wire.WorkerInfo {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__WorkerInfo> {
        let m = arena.message(modelgateway__v1__worker_info__init)
        m.pointee.id = try arena.string(id, field: "WorkerInfo.id")
        m.pointee.url = try arena.string(url, field: "WorkerInfo.url")
        m.pointee.model_id = try arena.string(modelID, field: "WorkerInfo.model_id")
        m.pointee.priority = priority
        m.pointee.cost = cost
        m.pointee.worker_type = Modelgateway__V1__WorkerType(rawValue: UInt32(bitPattern: workerType.rawValue))
        m.pointee.is_healthy = isHealthy.cBoolean
        m.pointee.load = load
        m.pointee.connection_mode = try arena.string(connectionMode, field: "WorkerInfo.connection_mode")
        m.pointee.runtime_type = Modelgateway__V1__RuntimeType(rawValue: UInt32(bitPattern: runtimeType.rawValue))
        if let bootstrapPort {
            m.pointee.bootstrap_port_opt_case = MODELGATEWAY__V1__WORKER_INFO__BOOTSTRAP_PORT_OPT_BOOTSTRAP_PORT
            m.pointee.bootstrap_port = bootstrapPort
        }
        (m.pointee.n_metadata, m.pointee.metadata) = try arena.mapEntries(metadata, field: "WorkerInfo.metadata") { key, value in
            let entry = arena.message(modelgateway__v1__worker_info__metadata_entry__init)
            entry.pointee.key = key
            entry.pointee.value = value
            return entry
        }
        m.pointee.job_status = try jobStatus?.make(in: arena)
        (m.pointee.n_labels, m.pointee.labels) = try arena.mapEntries(labels, field: "WorkerInfo.labels") { key, value in
            let entry = arena.message(modelgateway__v1__worker_info__labels_entry__init)
            entry.pointee.key = key
            entry.pointee.value = value
            return entry
        }
        m.pointee.health_check = try healthCheck?.make(in: arena)
        m.pointee.has_api_key = hasAPIKey.cBoolean
        m.pointee.circuit_breaker = try arena.string(circuitBreaker, field: "WorkerInfo.circuit_breaker")
        if let maxLoad {
            m.pointee.max_load_opt_case = MODELGATEWAY__V1__WORKER_INFO__MAX_LOAD_OPT_MAX_LOAD
            m.pointee.max_load = maxLoad
        }
        m.pointee.status = Modelgateway__V1__WorkerStatus(rawValue: UInt32(bitPattern: status.rawValue))
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__WorkerInfo>) throws(WireError) {
        let p = m.pointee
        self.init(
            id: try CRead.string(p.id, field: "WorkerInfo.id"),
            url: try CRead.string(p.url, field: "WorkerInfo.url"),
            modelID: try CRead.string(p.model_id, field: "WorkerInfo.model_id"),
            priority: p.priority,
            cost: p.cost,
            workerType: .init(rawValue: Int32(bitPattern: p.worker_type.rawValue)),
            isHealthy: CRead.bool(p.is_healthy),
            load: p.load,
            connectionMode: try CRead.string(p.connection_mode, field: "WorkerInfo.connection_mode"),
            runtimeType: .init(rawValue: Int32(bitPattern: p.runtime_type.rawValue)),
            bootstrapPort: p.bootstrap_port_opt_case == MODELGATEWAY__V1__WORKER_INFO__BOOTSTRAP_PORT_OPT_BOOTSTRAP_PORT ? p.bootstrap_port : nil,
            metadata: try CRead.map(p.n_metadata, p.metadata, field: "WorkerInfo.metadata") { (UnsafePointer($0.pointee.key), UnsafePointer($0.pointee.value)) },
            jobStatus: try p.job_status.map { (s) throws(WireError) in try Wire.JobStatus(c: s) },
            labels: try CRead.map(p.n_labels, p.labels, field: "WorkerInfo.labels") { (UnsafePointer($0.pointee.key), UnsafePointer($0.pointee.value)) },
            healthCheck: try p.health_check.map { (s) throws(WireError) in try Wire.HealthCheckSettings(c: s) },
            hasAPIKey: CRead.bool(p.has_api_key),
            circuitBreaker: try CRead.string(p.circuit_breaker, field: "WorkerInfo.circuit_breaker"),
            maxLoad: p.max_load_opt_case == MODELGATEWAY__V1__WORKER_INFO__MAX_LOAD_OPT_MAX_LOAD ? p.max_load : nil,
            status: .init(rawValue: Int32(bitPattern: p.status.rawValue))
        )
    }
}

extension Wire.ListWorkersRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__ListWorkersRequest> {
        let m = arena.message(modelgateway__v1__list_workers_request__init)
        m.pointee.model = try arena.string(model, field: "ListWorkersRequest.model")
        m.pointee.status = Modelgateway__V1__WorkerStatus(rawValue: UInt32(bitPattern: status.rawValue))
        m.pointee.worker_type = Modelgateway__V1__WorkerType(rawValue: UInt32(bitPattern: workerType.rawValue))
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__ListWorkersRequest>) throws(WireError) {
        self.init(
            model: try CRead.string(m.pointee.model, field: "ListWorkersRequest.model"),
            status: .init(rawValue: Int32(bitPattern: m.pointee.status.rawValue)),
            workerType: .init(rawValue: Int32(bitPattern: m.pointee.worker_type.rawValue))
        )
    }
}

extension Wire.WorkerStats {
    func make(in arena: Arena) -> UnsafeMutablePointer<Modelgateway__V1__WorkerStats> {
        let m = arena.message(modelgateway__v1__worker_stats__init)
        m.pointee.prefill_count = prefillCount
        m.pointee.decode_count = decodeCount
        m.pointee.regular_count = regularCount
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__WorkerStats>) {
        self.init(prefillCount: m.pointee.prefill_count, decodeCount: m.pointee.decode_count, regularCount: m.pointee.regular_count)
    }
}

extension Wire.AddWorkerRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__AddWorkerRequest> {
        let m = arena.message(modelgateway__v1__add_worker_request__init)
        m.pointee.url = try arena.string(url, field: "AddWorkerRequest.url")
        m.pointee.model_id = try arena.string(modelID, field: "AddWorkerRequest.model_id")
        if let priority {
            m.pointee.priority_opt_case = MODELGATEWAY__V1__ADD_WORKER_REQUEST__PRIORITY_OPT_PRIORITY
            m.pointee.priority = priority
        }
        if let cost {
            m.pointee.cost_opt_case = MODELGATEWAY__V1__ADD_WORKER_REQUEST__COST_OPT_COST
            m.pointee.cost = cost
        }
        (m.pointee.n_labels, m.pointee.labels) = try arena.mapEntries(labels, field: "AddWorkerRequest.labels") { key, value in
            let entry = arena.message(modelgateway__v1__add_worker_request__labels_entry__init)
            entry.pointee.key = key
            entry.pointee.value = value
            return entry
        }
        m.pointee.worker_type = Modelgateway__V1__WorkerType(rawValue: UInt32(bitPattern: workerType.rawValue))
        m.pointee.runtime_type = Modelgateway__V1__RuntimeType(rawValue: UInt32(bitPattern: runtimeType.rawValue))
        if let bootstrapPort {
            m.pointee.bootstrap_port_opt_case = MODELGATEWAY__V1__ADD_WORKER_REQUEST__BOOTSTRAP_PORT_OPT_BOOTSTRAP_PORT
            m.pointee.bootstrap_port = bootstrapPort
        }
        m.pointee.api_key = try arena.string(apiKey, field: "AddWorkerRequest.api_key")
        m.pointee.disable_health_check = disableHealthCheck.cBoolean
        m.pointee.health_check = try healthCheck?.make(in: arena)
        if let maxLoad {
            m.pointee.max_load_opt_case = MODELGATEWAY__V1__ADD_WORKER_REQUEST__MAX_LOAD_OPT_MAX_LOAD
            m.pointee.max_load = maxLoad
        }
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__AddWorkerRequest>) throws(WireError) {
        let p = m.pointee
        self.init(
            url: try CRead.string(p.url, field: "AddWorkerRequest.url"),
            modelID: try CRead.string(p.model_id, field: "AddWorkerRequest.model_id"),
            priority: p.priority_opt_case == MODELGATEWAY__V1__ADD_WORKER_REQUEST__PRIORITY_OPT_PRIORITY ? p.priority : nil,
            cost: p.cost_opt_case == MODELGATEWAY__V1__ADD_WORKER_REQUEST__COST_OPT_COST ? p.cost : nil,
            labels: try CRead.map(p.n_labels, p.labels, field: "AddWorkerRequest.labels") { (UnsafePointer($0.pointee.key), UnsafePointer($0.pointee.value)) },
            workerType: .init(rawValue: Int32(bitPattern: p.worker_type.rawValue)),
            runtimeType: .init(rawValue: Int32(bitPattern: p.runtime_type.rawValue)),
            bootstrapPort: p.bootstrap_port_opt_case == MODELGATEWAY__V1__ADD_WORKER_REQUEST__BOOTSTRAP_PORT_OPT_BOOTSTRAP_PORT ? p.bootstrap_port : nil,
            apiKey: try CRead.string(p.api_key, field: "AddWorkerRequest.api_key"),
            disableHealthCheck: CRead.bool(p.disable_health_check),
            healthCheck: try p.health_check.map { (s) throws(WireError) in try Wire.HealthCheckSettings(c: s) },
            maxLoad: p.max_load_opt_case == MODELGATEWAY__V1__ADD_WORKER_REQUEST__MAX_LOAD_OPT_MAX_LOAD ? p.max_load : nil
        )
    }
}

extension Wire.AddWorkerReply {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__AddWorkerReply> {
        let m = arena.message(modelgateway__v1__add_worker_reply__init)
        m.pointee.status = try arena.string(status, field: "AddWorkerReply.status")
        m.pointee.worker_id = try arena.string(workerID, field: "AddWorkerReply.worker_id")
        m.pointee.url = try arena.string(url, field: "AddWorkerReply.url")
        m.pointee.location = try arena.string(location, field: "AddWorkerReply.location")
        m.pointee.message = try arena.string(message, field: "AddWorkerReply.message")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__AddWorkerReply>) throws(WireError) {
        self.init(
            status: try CRead.string(m.pointee.status, field: "AddWorkerReply.status"),
            workerID: try CRead.string(m.pointee.worker_id, field: "AddWorkerReply.worker_id"),
            url: try CRead.string(m.pointee.url, field: "AddWorkerReply.url"),
            location: try CRead.string(m.pointee.location, field: "AddWorkerReply.location"),
            message: try CRead.string(m.pointee.message, field: "AddWorkerReply.message")
        )
    }
}

extension Wire.ListWorkersReply {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__ListWorkersReply> {
        let m = arena.message(modelgateway__v1__list_workers_reply__init)
        (m.pointee.n_workers, m.pointee.workers) = try arena.pointers(workers) { (w) throws(WireError) in try w.make(in: arena) }
        m.pointee.total = total
        m.pointee.stats = stats?.make(in: arena)
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__ListWorkersReply>) throws(WireError) {
        self.init(
            workers: try CRead.messages(m.pointee.n_workers, m.pointee.workers) { (w) throws(WireError) in try Wire.WorkerInfo(c: w) },
            total: m.pointee.total,
            stats: m.pointee.stats.map { Wire.WorkerStats(c: $0) }
        )
    }
}

extension Wire.GetWorkerRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__GetWorkerRequest> {
        let m = arena.message(modelgateway__v1__get_worker_request__init)
        m.pointee.worker_id = try arena.string(workerID, field: "GetWorkerRequest.worker_id")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__GetWorkerRequest>) throws(WireError) {
        self.init(workerID: try CRead.string(m.pointee.worker_id, field: "GetWorkerRequest.worker_id"))
    }
}

extension Wire.GetWorkerReply {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__GetWorkerReply> {
        let m = arena.message(modelgateway__v1__get_worker_reply__init)
        m.pointee.worker = try worker?.make(in: arena)
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__GetWorkerReply>) throws(WireError) {
        self.init(worker: try m.pointee.worker.map { (w) throws(WireError) in try Wire.WorkerInfo(c: w) })
    }
}

extension Wire.UpdateWorkerRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__UpdateWorkerRequest> {
        let m = arena.message(modelgateway__v1__update_worker_request__init)
        m.pointee.worker_id = try arena.string(workerID, field: "UpdateWorkerRequest.worker_id")
        if let priority {
            m.pointee.priority_opt_case = MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__PRIORITY_OPT_PRIORITY
            m.pointee.priority = priority
        }
        if let cost {
            m.pointee.cost_opt_case = MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__COST_OPT_COST
            m.pointee.cost = cost
        }
        if let labels {
            let l = arena.message(modelgateway__v1__labels__init)
            (l.pointee.n_entries, l.pointee.entries) = try arena.mapEntries(labels, field: "UpdateWorkerRequest.labels") { key, value in
                let entry = arena.message(modelgateway__v1__labels__entries_entry__init)
                entry.pointee.key = key
                entry.pointee.value = value
                return entry
            }
            m.pointee.labels = l
        }
        if let apiKey {
            m.pointee.api_key_opt_case = MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__API_KEY_OPT_API_KEY
            m.pointee.api_key = try arena.string(apiKey, field: "UpdateWorkerRequest.api_key")
        }
        m.pointee.health_check = try healthCheck?.make(in: arena)
        if let maxLoad {
            m.pointee.max_load_opt_case = MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__MAX_LOAD_OPT_MAX_LOAD
            m.pointee.max_load = maxLoad
        }
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__UpdateWorkerRequest>) throws(WireError) {
        let p = m.pointee
        self.init(
            workerID: try CRead.string(p.worker_id, field: "UpdateWorkerRequest.worker_id"),
            priority: p.priority_opt_case == MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__PRIORITY_OPT_PRIORITY ? p.priority : nil,
            cost: p.cost_opt_case == MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__COST_OPT_COST ? p.cost : nil,
            labels: try p.labels.map { (l) throws(WireError) in
                try CRead.map(l.pointee.n_entries, l.pointee.entries, field: "UpdateWorkerRequest.labels") {
                    (UnsafePointer($0.pointee.key), UnsafePointer($0.pointee.value))
                }
            },
            apiKey: p.api_key_opt_case == MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__API_KEY_OPT_API_KEY
                ? try CRead.string(p.api_key, field: "UpdateWorkerRequest.api_key") : nil,
            healthCheck: try p.health_check.map { (s) throws(WireError) in try Wire.HealthCheckSettings(c: s) },
            maxLoad: p.max_load_opt_case == MODELGATEWAY__V1__UPDATE_WORKER_REQUEST__MAX_LOAD_OPT_MAX_LOAD ? p.max_load : nil
        )
    }
}

extension Wire.AcceptedReply {
    func makeUpdateReply(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__UpdateWorkerReply> {
        let m = arena.message(modelgateway__v1__update_worker_reply__init)
        m.pointee.status = try arena.string(status, field: "UpdateWorkerReply.status")
        m.pointee.worker_id = try arena.string(workerID, field: "UpdateWorkerReply.worker_id")
        m.pointee.message = try arena.string(message, field: "UpdateWorkerReply.message")
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__UpdateWorkerReply>) throws(WireError) {
        self.init(
            status: try CRead.string(m.pointee.status, field: "UpdateWorkerReply.status"),
            workerID: try CRead.string(m.pointee.worker_id, field: "UpdateWorkerReply.worker_id"),
            message: try CRead.string(m.pointee.message, field: "UpdateWorkerReply.message")
        )
    }

    func makeRemoveReply(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__RemoveWorkerReply> {
        let m = arena.message(modelgateway__v1__remove_worker_reply__init)
        m.pointee.status = try arena.string(status, field: "RemoveWorkerReply.status")
        m.pointee.worker_id = try arena.string(workerID, field: "RemoveWorkerReply.worker_id")
        m.pointee.message = try arena.string(message, field: "RemoveWorkerReply.message")
        m.pointee.worker_status = Modelgateway__V1__WorkerStatus(rawValue: UInt32(bitPattern: workerStatus.rawValue))
        m.pointee.in_flight = inFlight
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__RemoveWorkerReply>) throws(WireError) {
        self.init(
            status: try CRead.string(m.pointee.status, field: "RemoveWorkerReply.status"),
            workerID: try CRead.string(m.pointee.worker_id, field: "RemoveWorkerReply.worker_id"),
            message: try CRead.string(m.pointee.message, field: "RemoveWorkerReply.message"),
            workerStatus: .init(rawValue: Int32(bitPattern: m.pointee.worker_status.rawValue)),
            inFlight: m.pointee.in_flight
        )
    }
}

extension Wire.RemoveWorkerRequest {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__RemoveWorkerRequest> {
        let m = arena.message(modelgateway__v1__remove_worker_request__init)
        m.pointee.worker_id = try arena.string(workerID, field: "RemoveWorkerRequest.worker_id")
        m.pointee.force = force.cBoolean
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__RemoveWorkerRequest>) throws(WireError) {
        self.init(workerID: try CRead.string(m.pointee.worker_id, field: "RemoveWorkerRequest.worker_id"), force: CRead.bool(m.pointee.force))
    }
}
