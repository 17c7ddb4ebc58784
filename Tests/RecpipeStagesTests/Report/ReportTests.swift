import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct ReportTests {
    @Test func reportIsSelfContainedAndHasEverySection() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        try ScoreStageTests().score(store, k: 20)
        try trainBaselines(store, [.ease, .itemknn])
        try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)
        try StageRunner.run(try TrainStageTests().small { $0.augmentedWeight = 0.5; $0.publish = false }, store: store, logger: quietLogger)
        try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        let html = try Report.html(store)
        for section in ["<h2>Data</h2>", "<h2>Models</h2>", "<h2>Evaluation</h2>", "<h2>Popularity and the long tail</h2>",
                        "<h2>Run history</h2>", "Validation NDCG@100", "Training loss", "KL weight β", "head | long tail",
                        "Live recommendations by item popularity rank", "± ", "<h2>Augmentation</h2>",
                        "Generator training losses", "Output spread across users", "Ablation, multvae with and without",
                        "augmentation goal", "<h2>Closed loop: published lists against what users did next</h2>",
                        "No closed-loop figures yet", "<h2>Live lists</h2>", "nothing live yet: model",
                        "Candidates, validation ndcg@100 on the same 30 users", "Coverage: 300 of the 300 users"] {
            #expect(html.contains(section), "missing \(section)")
        }
        // Models' validation figures are shown as figures, not as the stored JSON.
        #expect(html.contains("ndcg@100 0.") && !html.contains("{&quot;ndcg") && !html.contains("{\"ndcg"))
        #expect(html.components(separatedBy: "<svg").count - 1 >= 6)
        // Nothing to fetch: no scripts, links or external sources.
        for forbidden in ["<script", "src=", "href=", "@import", "url("] { #expect(!html.contains(forbidden)) }
        // Every model evaluated appears in the table.
        for model in ["popularity", "ease", "itemknn", "multvae", "multvae+augmented", "cfgan"] {
            #expect(html.contains("<td>\(model)</td>"))
        }
    }

    @Test func reportOfAnEmptyDatabaseSaysSo() throws {
        let scratch = Scratch()
        let html = try Report.html(try scratch.store())
        #expect(html.contains("No clean run yet.") && html.contains("No model trained yet.") && html.contains("No evaluation yet.")
                && html.contains("No augment run yet."))
    }
}
