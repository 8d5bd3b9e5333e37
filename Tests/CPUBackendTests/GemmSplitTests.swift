import Testing

@testable import CPUBackend

/// How a split convolution GEMM divides its work between threads (`splitsByRows`): by output rows (filters) or by
/// column panels (output positions), judged by the columns the busiest thread computes with ParallelFor's
/// contiguous shares of the panels, whose last one may be narrow.
struct GemmSplitTests {
    /// A 7x7 plane (49 columns) is a panel of 32 and one of 17 with AVX-512: by panels one thread computes 32
    /// columns of all 960 rows, by rows 49 columns of 480. (Averaging the panels' widths, 25, judged them even.)
    @Test func sevenBySevenPlanesSplitByRows() {
        #expect(splitsByRows(m: 960, n: 49, panels: 2, threads: 2, width: 32))
        #expect(splitsByRows(m: 1280, n: 49, panels: 2, threads: 2, width: 32))
        // AVX2's 16-wide panels: four, 16 + 16 against 16 + 1 columns.
        #expect(splitsByRows(m: 960, n: 49, panels: 4, threads: 2, width: 16))
    }

    /// 14x14 (196 columns, seven panels of 32: 96 and 100 columns per thread) against 98 by rows: within 5%, so
    /// rows only where the weights outweigh the activations (more filters than positions).
    @Test func nearTiesGoToTheLargerOperand() {
        #expect(splitsByRows(m: 384, n: 196, panels: 7, threads: 2, width: 32))
        #expect(!splitsByRows(m: 64, n: 196, panels: 7, threads: 2, width: 32))
    }

    /// Wide planes divide evenly by panels; one thread or too few rows never split by rows.
    @Test func evenPanelsAndSmallShapesStayByPanels() {
        #expect(!splitsByRows(m: 96, n: 12544, panels: 392, threads: 2, width: 32))
        #expect(!splitsByRows(m: 960, n: 49, panels: 2, threads: 1, width: 32))
        #expect(!splitsByRows(m: 40, n: 49, panels: 2, threads: 2, width: 32))
        #expect(splitsByRows(m: 40, n: 20, panels: 1, threads: 2, width: 32))
        #expect(!splitsByRows(m: 960, n: 49, panels: 2, threads: 2, width: 0))
    }

    /// Sizes from a model cannot overflow the costs into a wrong answer or a trap.
    @Test func hugeSizesDoNotOverflow() {
        #expect(!splitsByRows(m: Int.max / 2, n: Int.max / 2, panels: Int.max / 64, threads: 2, width: 32))
    }
}
