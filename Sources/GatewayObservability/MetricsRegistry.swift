import Synchronization

/// A family of series sharing a name, help text, type and label names, and its
/// rendering in the Prometheus text format.
public protocol MetricFamily: Sendable {
    var name: String { get }
    func render(into out: inout String)
}

/// Series of one family kept by their label values. Looking a series up takes a
/// short lock; callers on the request path hold on to the series they use.
public final class SeriesTable<Series: AnyObject & Sendable>: Sendable {
    public let labelNames: [String]
    private let make: @Sendable () -> Series
    private let series = Mutex<[[String]: Series]>([:])

    public init(labelNames: [String], make: @escaping @Sendable () -> Series) {
        self.labelNames = labelNames
        self.make = make
    }

    /// The series for `values` (one per label name), created on first use.
    public func labels(_ values: [String]) -> Series {
        precondition(values.count == labelNames.count, "expected \(labelNames.count) label values (\(labelNames)), got \(values.count)")
        return series.withLock { table in
            if let existing = table[values] { return existing }
            let created = make()
            table[values] = created
            return created
        }
    }

    /// Drops every series whose label values match (e.g. those of a removed worker).
    public func removeAll(where shouldRemove: ([String]) -> Bool) {
        series.withLock { table in
            for key in table.keys where shouldRemove(key) { table.removeValue(forKey: key) }
        }
    }

    /// The series, sorted by label values so scrapes are stable.
    public func sorted() -> [(labels: [String], series: Series)] {
        let all = series.withLock { table in table.map { (labels: $0.key, series: $0.value) } }
        return all.sorted { $0.labels.lexicographicallyPrecedes($1.labels) }
    }
}

/// A series with one sample per label set: a counter or a gauge.
public protocol ScalarSeries: AnyObject, Sendable {
    init()
    /// The family's type in the exposition format.
    static var prometheusType: String { get }
    /// The current value as a sample.
    var sampleValue: String { get }
}

extension Counter: ScalarSeries {
    public static var prometheusType: String { "counter" }
    public var sampleValue: String { String(value) }
}

extension Gauge: ScalarSeries {
    public static var prometheusType: String { "gauge" }
    public var sampleValue: String { PrometheusText.format(value) }
}

/// A family of counters or of gauges.
public final class ScalarFamily<Series: ScalarSeries>: MetricFamily {
    public let name: String
    public let help: String
    public let table: SeriesTable<Series>

    public init(name: String, help: String, labelNames: [String]) {
        PrometheusText.precondition(metricName: name, labelNames: labelNames)
        self.name = name
        self.help = help
        self.table = SeriesTable(labelNames: labelNames) { Series() }
    }

    public func labels(_ values: String...) -> Series { table.labels(values) }
    public func labels(_ values: [String]) -> Series { table.labels(values) }

    public func render(into out: inout String) {
        PrometheusText.appendHeader(name: name, help: help, type: Series.prometheusType, to: &out)
        for (labels, series) in table.sorted() {
            PrometheusText.appendSample(name: name, labelNames: table.labelNames, labelValues: labels, value: series.sampleValue, to: &out)
        }
    }
}

public typealias CounterFamily = ScalarFamily<Counter>
public typealias GaugeFamily = ScalarFamily<Gauge>

public final class HistogramFamily: MetricFamily {
    public let name: String
    public let help: String
    public let upperBounds: [Double]
    public let table: SeriesTable<Histogram>
    /// The `le` values as they are printed, computed once.
    private let boundLabels: [String]

    public init(name: String, help: String, labelNames: [String], buckets: [Double]) {
        PrometheusText.precondition(metricName: name, labelNames: labelNames, reserved: ["le"])
        precondition(!buckets.isEmpty && zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "\(name): buckets must ascend strictly")
        precondition(buckets.allSatisfy(\.isFinite), "\(name): buckets must be finite (+Inf is implied)")
        self.name = name
        self.help = help
        self.upperBounds = buckets
        self.boundLabels = buckets.map(PrometheusText.format) + ["+Inf"]
        self.table = SeriesTable(labelNames: labelNames) { Histogram(upperBounds: buckets) }
    }

    public func labels(_ values: String...) -> Histogram { table.labels(values) }
    public func labels(_ values: [String]) -> Histogram { table.labels(values) }

    public func render(into out: inout String) {
        PrometheusText.appendHeader(name: name, help: help, type: "histogram", to: &out)
        for (labels, histogram) in table.sorted() {
            let (cumulative, sum) = histogram.snapshot()
            // A series appears with its first observation (routes never called stay out).
            guard cumulative.last ?? 0 > 0 else { continue }
            for (bound, count) in zip(boundLabels, cumulative) {
                PrometheusText.appendSample(
                    name: name, suffix: "_bucket", labelNames: table.labelNames, labelValues: labels, extraLabel: ("le", bound),
                    value: String(count), to: &out
                )
            }
            PrometheusText.appendSample(
                name: name, suffix: "_sum", labelNames: table.labelNames, labelValues: labels, value: PrometheusText.format(sum), to: &out
            )
            PrometheusText.appendSample(
                name: name, suffix: "_count", labelNames: table.labelNames, labelValues: labels, value: String(cumulative.last ?? 0), to: &out
            )
        }
    }
}

/// A family whose samples are computed at scrape time (per-worker state read from
/// the worker registry), so it never holds series of workers that are gone.
public struct CollectedFamily: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge
    }

    public let name: String
    public let help: String
    public let kind: Kind
    public let labelNames: [String]
    public var samples: [(labels: [String], value: Double)] = []

    public init(name: String, help: String, kind: Kind, labelNames: [String] = []) {
        PrometheusText.precondition(metricName: name, labelNames: labelNames)
        self.name = name
        self.help = help
        self.kind = kind
        self.labelNames = labelNames
    }

    public mutating func add(_ value: Double) {
        add([], value)
    }

    public mutating func add(_ labels: [String], _ value: Double) {
        precondition(labels.count == labelNames.count, "\(name): expected label values for \(labelNames)")
        samples.append((labels, value))
    }

    public func render(into out: inout String) {
        PrometheusText.appendHeader(name: name, help: help, type: kind.rawValue, to: &out)
        for sample in samples {
            PrometheusText.appendSample(
                name: name, labelNames: labelNames, labelValues: sample.labels, value: PrometheusText.format(sample.value), to: &out
            )
        }
    }
}

/// The metric families of one process, rendered together in the Prometheus text
/// format (version 0.0.4).
///
/// Families are registered once at start-up; their series are plain atomics, so
/// recording costs one atomic operation on a series the caller holds. Collectors
/// add families computed at scrape time.
public final class MetricsRegistry: Sendable {
    public typealias Collector = @Sendable () -> [CollectedFamily]

    /// The content type of `render()`'s output.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let families = Mutex<[any MetricFamily]>([])
    private let collectors = Mutex<[Collector]>([])

    public init() {}

    public func counter(_ name: String, help: String, labels: [String] = []) -> CounterFamily {
        register(CounterFamily(name: name, help: help, labelNames: labels))
    }

    public func gauge(_ name: String, help: String, labels: [String] = []) -> GaugeFamily {
        register(GaugeFamily(name: name, help: help, labelNames: labels))
    }

    public func histogram(_ name: String, help: String, labels: [String] = [], buckets: [Double]) -> HistogramFamily {
        register(HistogramFamily(name: name, help: help, labelNames: labels, buckets: buckets))
    }

    /// Adds families computed at each scrape.
    public func addCollector(_ collector: @escaping Collector) {
        collectors.withLock { $0.append(collector) }
    }

    private func register<Family: MetricFamily>(_ family: Family) -> Family {
        families.withLock { families in
            precondition(!families.contains { $0.name == family.name }, "metric \(family.name) is registered twice")
            families.append(family)
        }
        return family
    }

    /// Every family, in registration order, then the collected ones. Collectors run
    /// first: they may prune series (those of removed workers) before they are shown.
    public func render() -> String {
        let collected = collectors.withLock { $0 }.flatMap { $0() }
        var out = ""
        out.reserveCapacity(8 * 1024)
        for family in families.withLock({ $0 }) {
            family.render(into: &out)
        }
        for family in collected { family.render(into: &out) }
        return out
    }
}
