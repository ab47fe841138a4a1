import Foundation

/// One labelled example: a user's features and whether they were active on the predicted day.
public struct Sample: Sendable {
    public var features: [Double]
    public var label: Bool
    /// Kept out of the fit and used to measure it.
    public var heldOut: Bool

    public init(features: [Double], label: Bool, heldOut: Bool) {
        self.features = features
        self.label = label
        self.heldOut = heldOut
    }
}

/// L2-regularised logistic regression on standardised features, fitted by Newton's method
/// (a handful of iterations: the features are few). Stored with the run as JSON.
public struct LogisticModel: Codable, Sendable, Equatable {
    public var featureNames: [String]
    /// Standardisation: (x - mean) / scale, from the training slice.
    public var means: [Double]
    public var scales: [Double]
    public var intercept: Double
    /// One per feature, on the standardised scale.
    public var coefficients: [Double]
    public var fit: FitQuality

    public struct FitQuality: Codable, Sendable, Equatable {
        public var trainSize: Int
        public var testSize: Int
        /// Share of positive labels in the training slice.
        public var baseRate: Double
        public var iterations: Int
        /// On the held-out slice; nil when it has a single class (AUC) or is empty.
        public var logLoss: Double?
        public var auc: Double?
    }

    /// The probability of the positive label.
    public func probability(_ features: [Double]) -> Double {
        var z = self.intercept
        for i in self.coefficients.indices { z += self.coefficients[i] * (features[i] - self.means[i]) / self.scales[i] }
        return Self.sigmoid(z)
    }

    static func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }

    public enum FitError: Error, CustomStringConvertible {
        case notEnoughData(String)
        public var description: String {
            switch self { case .notEnoughData(let why): return "cannot fit the model: \(why)" }
        }
    }

    /// Fits on the samples not held out and measures on those held out. Throws when the
    /// training slice is empty or has one class only (nothing to learn).
    public static func fit(_ samples: [Sample], featureNames: [String], l2: Double = 1.0, maxIterations: Int = 25) throws -> LogisticModel {
        let k = featureNames.count
        let train = samples.filter { !$0.heldOut }
        let test = samples.filter(\.heldOut)
        let positives = train.reduce(0) { $0 + ($1.label ? 1 : 0) }
        guard !train.isEmpty else { throw FitError.notEnoughData("no training samples") }
        guard positives > 0 && positives < train.count else {
            throw FitError.notEnoughData("every training label is \(positives > 0) (\(train.count) samples)")
        }
        // Standardise on the training slice.
        var means = [Double](repeating: 0, count: k), scales = [Double](repeating: 0, count: k)
        for s in train { for j in 0..<k { means[j] += s.features[j] } }
        for j in 0..<k { means[j] /= Double(train.count) }
        for s in train { for j in 0..<k { let d = s.features[j] - means[j]; scales[j] += d * d } }
        for j in 0..<k {
            let sd = (scales[j] / Double(train.count)).squareRoot()
            scales[j] = sd > 1e-12 ? sd : 1
        }
        let rows: [[Double]] = train.map { s in [1] + (0..<k).map { (s.features[$0] - means[$0]) / scales[$0] } }
        let labels: [Double] = train.map { $0.label ? 1 : 0 }

        // Newton–Raphson on the penalised log-likelihood (the intercept is not penalised).
        let n = k + 1
        var w = [Double](repeating: 0, count: n)
        w[0] = log(Double(positives) / Double(train.count - positives))
        var iterations = 0
        for _ in 0..<maxIterations {
            iterations += 1
            var gradient = [Double](repeating: 0, count: n)
            var hessian = [Double](repeating: 0, count: n * n)
            for (x, y) in zip(rows, labels) {
                var z = 0.0
                for j in 0..<n { z += w[j] * x[j] }
                let p = sigmoid(z)
                let r = p - y, v = max(p * (1 - p), 1e-12)
                for a in 0..<n {
                    gradient[a] += r * x[a]
                    let vx = v * x[a]
                    for b in a..<n { hessian[a * n + b] += vx * x[b] }
                }
            }
            for a in 0..<n { for b in 0..<a { hessian[a * n + b] = hessian[b * n + a] } }
            for j in 1..<n {
                gradient[j] += l2 * w[j]
                hessian[j * n + j] += l2
            }
            guard let step = solve(hessian, gradient, n: n) else { break }
            var largest = 0.0
            for j in 0..<n {
                w[j] -= step[j]
                largest = max(largest, abs(step[j]))
            }
            if largest < 1e-7 { break }
        }
        var model = LogisticModel(featureNames: featureNames, means: means, scales: scales, intercept: w[0],
                                  coefficients: Array(w[1...]),
                                  fit: FitQuality(trainSize: train.count, testSize: test.count,
                                                  baseRate: Double(positives) / Double(train.count), iterations: iterations))
        if !test.isEmpty {
            let scores = test.map { model.probability($0.features) }
            let truth = test.map(\.label)
            model.fit.logLoss = Self.logLoss(scores, truth)
            model.fit.auc = Self.auc(scores, truth)
        }
        return model
    }

    /// Mean negative log-likelihood (probabilities clamped away from 0 and 1).
    public static func logLoss(_ scores: [Double], _ labels: [Bool]) -> Double {
        var total = 0.0
        for (p, y) in zip(scores, labels) {
            let q = min(max(p, 1e-15), 1 - 1e-15)
            total -= y ? log(q) : log(1 - q)
        }
        return total / Double(max(scores.count, 1))
    }

    /// Area under the ROC curve: the probability that a random positive scores above a random
    /// negative (ties count half), by ranks. Nil when there is only one class.
    public static func auc(_ scores: [Double], _ labels: [Bool]) -> Double? {
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }
        let negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for t in i...j where labels[order[t]] { rankSum += averageRank }
            i = j + 1
        }
        let p = Double(positives), q = Double(negatives)
        return (rankSum - p * (p + 1) / 2) / (p * q)
    }

    /// Solves `a x = b` (a is n×n, row-major) by Gaussian elimination with partial pivoting.
    static func solve(_ a: [Double], _ b: [Double], n: Int) -> [Double]? {
        var m = a, x = b
        for col in 0..<n {
            var pivot = col
            for r in (col + 1)..<max(col + 1, n) where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
            guard abs(m[pivot * n + col]) > 1e-12 else { return nil }
            if pivot != col {
                for c in 0..<n { m.swapAt(col * n + c, pivot * n + c) }
                x.swapAt(col, pivot)
            }
            for r in (col + 1)..<max(col + 1, n) {
                let f = m[r * n + col] / m[col * n + col]
                guard f != 0 else { continue }
                for c in col..<n { m[r * n + c] -= f * m[col * n + c] }
                x[r] -= f * x[col]
            }
        }
        for col in stride(from: n - 1, through: 0, by: -1) {
            var s = x[col]
            for c in (col + 1)..<max(col + 1, n) { s -= m[col * n + c] * x[c] }
            x[col] = s / m[col * n + col]
        }
        return x
    }
}

/// Which users are held out of the fit: a fixed one in five, by a hash of the id, so a re-run
/// holds out the same users.
public func isHeldOut(_ userID: UUID) -> Bool {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    let u = userID.uuid
    for b in [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15] {
        h = (h ^ UInt64(b)) &* 0x100_0000_01b3
    }
    return h % 5 == 0
}
