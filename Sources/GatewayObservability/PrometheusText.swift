/// Pieces of the Prometheus text exposition format (version 0.0.4): name rules,
/// escaping and number spelling, shared by the registry's families and the
/// samples collectors emit at scrape time.
public enum PrometheusText {
    /// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name grammar.
    public static func isValidMetricName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isLetter(first) || first == UInt8(ascii: "_") || first == UInt8(ascii: ":")
        else { return false }
        return name.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ":") }
    }

    /// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*` and is not one of the
    /// names Prometheus reserves for itself (those starting with `__`).
    public static func isValidLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isLetter(first) || first == UInt8(ascii: "_") else { return false }
        guard !name.hasPrefix("__") else { return false }
        return name.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// Stops the process with a message naming the culprit when a metric name or its
    /// label names are invalid. They are programmer constants, so a mistake is a bug
    /// that should surface at start-up, not a scrape that Prometheus refuses.
    public static func precondition(metricName name: String, labelNames: [String], reserved: Set<String> = []) {
        Swift.precondition(
            isValidMetricName(name),
            "invalid metric name \"\(name)\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        )
        for label in labelNames {
            Swift.precondition(
                isValidLabelName(label),
                "metric \(name): invalid label name \"\(label)\": must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
            )
            Swift.precondition(!reserved.contains(label), "metric \(name): label name \"\(label)\" is reserved")
        }
        Swift.precondition(Set(labelNames).count == labelNames.count, "metric \(name): duplicate label names \(labelNames)")
    }

    /// Appends `# HELP` and `# TYPE` for one family.
    public static func appendHeader(name: String, help: String, type: String, to out: inout String) {
        out += "# HELP "
        out += name
        out += " "
        appendEscaped(help, quotes: false, to: &out)
        out += "\n# TYPE "
        out += name
        out += " "
        out += type
        out += "\n"
    }

    /// Appends one sample line: `name{a="x",b="y"} value`. `extraLabel` (the
    /// histogram's `le`) goes last; no braces at all when there are no labels.
    public static func appendSample(
        name: String,
        suffix: String = "",
        labelNames: [String],
        labelValues: [String],
        extraLabel: (name: String, value: String)? = nil,
        value: String,
        to out: inout String
    ) {
        out += name
        out += suffix
        if !labelNames.isEmpty || extraLabel != nil {
            out += "{"
            var first = true
            for (labelName, labelValue) in zip(labelNames, labelValues) {
                if !first { out += "," }
                first = false
                out += labelName
                out += "=\""
                appendEscaped(labelValue, quotes: true, to: &out)
                out += "\""
            }
            if let extraLabel {
                if !first { out += "," }
                out += extraLabel.name
                out += "=\""
                out += extraLabel.value
                out += "\""
            }
            out += "}"
        }
        out += " "
        out += value
        out += "\n"
    }

    /// Escapes backslash and newline (and the double quote in label values), the
    /// only escapes the format defines.
    public static func appendEscaped(_ text: String, quotes: Bool, to out: inout String) {
        let needsEscaping = text.utf8.contains {
            $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\n") || (quotes && $0 == UInt8(ascii: "\""))
        }
        guard needsEscaping else {
            out += text
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quotes: out += "\\\""
            default: out.unicodeScalars.append(scalar)
            }
        }
    }

    /// A sample value as Prometheus spells it: `+Inf`, `-Inf`, `NaN`, whole numbers
    /// without a fraction (`1`, not `1.0`), others in Swift's shortest round-trip
    /// form (`0.0005`, `2.5`, `1e-05`), which Prometheus' parser reads back exactly.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == .infinity { return "+Inf" }
        if value == -.infinity { return "-Inf" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }

    @inline(__always)
    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
