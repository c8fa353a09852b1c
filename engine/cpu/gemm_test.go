package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

// TestMain splits all work between workers, however small, so that the
// tests comparing worker counts compare something.
func TestMain(m *testing.M) {
	parallelGrain, gemmGrain = 1, 1
	os.Exit(m.Run())
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// closeTo reports the first element where got and want differ by more than
// atol + rtol·|want|.
func closeTo(got, want []float32, atol, rtol float64) (int, bool) {
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > atol+rtol*math.Abs(float64(want[i])) || math.IsNaN(float64(got[i])) {
			return i, false
		}
	}
	return 0, true
}

func TestGemmAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	shapes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 15, 300}, {33, 100, 70}, {150, 40, 260}, {32, 1100, 120}, {300, 20, 520}, {13, 2100, 9},
		{50, 8, 30}, {301, 24, 17}} // 8-column tiles (kernel8)
	for _, s := range shapes {
		M, N, K := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, beta := range []float32{0, 1} {
					name := fmt.Sprintf("M%d N%d K%d ta=%v tb=%v beta=%v", M, N, K, ta, tb, beta)
					// Strides larger than the matrices, as in a dense block's buffer.
					lda, ldb, ldc := K+3, N+5, N+2
					if ta {
						lda = M + 3
					}
					if tb {
						ldb = K + 5
					}
					A := randSlice(rng, max(M, K)*lda)
					B := randSlice(rng, max(N, K)*ldb)
					C0 := randSlice(rng, M*ldc)
					want := slices.Clone(C0)
					GemmNaive(ta, tb, M, N, K, A, lda, B, ldb, beta, want, ldc)
					var first []float32
					for _, workers := range []int{1, 2, 3} {
						got := slices.Clone(C0)
						Gemm(ta, tb, M, N, K, A, lda, B, ldb, beta == 1, got, ldc, workers)
						if i, ok := closeTo(got, want, 1e-4*math.Sqrt(float64(K)), 1e-5); !ok {
							t.Fatalf("%s workers=%d: C[%d] = %v, want %v", name, workers, i, got[i], want[i])
						}
						if first == nil {
							first = got
						} else if !slices.Equal(first, got) {
							t.Fatalf("%s: %d workers gave different bits than 1", name, workers)
						}
					}
				}
			}
		}
	}
}

func TestKernelAsmMatchesGo(t *testing.T) {
	if !use.gemm {
		t.Skip("no AVX2+FMA on this CPU: only the Go kernel runs")
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for _, k := range []int{1, 2, 7, 256} {
		for _, layout := range []struct {
			name        string
			aStep, aRow int
		}{{"packed A", mr, 1}, {"A rows in place", 1, k + 3}} {
			a, b := randSlice(rng, k*layout.aStep+mr*layout.aRow), randSlice(rng, k*nr)
			for _, acc := range []bool{false, true} {
				c0 := randSlice(rng, 5*(nr+8)+nr+40)
				want, got := slices.Clone(c0), slices.Clone(c0)
				kernelGo(k, a, layout.aStep, layout.aRow, b, want, nr+8, acc)
				kernel(k, a, layout.aStep, layout.aRow, b, got, nr+8, acc)
				if i, ok := closeTo(got, want, 1e-5*float64(k+1), 1e-5); !ok {
					t.Errorf("%s k=%d accumulate=%v: c[%d] = %v, Go kernel %v", layout.name, k, acc, i, got[i], want[i])
				}
				// Nothing outside the 6×16 tile is touched.
				for i := range c0 {
					if r, col := i/(nr+8), i%(nr+8); (r >= mr || col >= nr) && got[i] != c0[i] {
						t.Fatalf("%s k=%d: wrote outside the tile at %d", layout.name, k, i)
					}
				}
			}
		}
	}
}

// The 512-bit kernel over two strips gives the same bits as the AVX2
// kernel on each, over one tile or several, and touches nothing outside
// its 6×32 tiles.
func TestKernelPairMatchesKernel(t *testing.T) {
	if !use.gemmPair {
		t.Skip("no AVX-512 on this CPU: kernelPair is kernel twice")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	const ldc = 2*nr + 5
	for _, k := range []int{1, 2, 7, 256} {
		for _, tiles := range []int{1, 3} {
			for _, layout := range []struct {
				name               string
				aStep, aRow, aTile int
			}{{"packed A", mr, 1, mr * k}, {"A rows in place", 1, k + 3, mr * (k + 3)}} {
				a, b := randSlice(rng, (tiles-1)*layout.aTile+k*layout.aStep+mr*layout.aRow), randSlice(rng, 2*k*nr)
				for _, acc := range []bool{false, true} {
					c0 := randSlice(rng, (tiles*mr+1)*ldc)
					want, got := slices.Clone(c0), slices.Clone(c0)
					kernelPairGo(k, a, layout.aStep, layout.aRow, layout.aTile, tiles, b, want, ldc, acc)
					kernelPair(k, a, layout.aStep, layout.aRow, layout.aTile, tiles, b, got, ldc, acc)
					if !slices.Equal(got, want) {
						i, _ := closeTo(got, want, 0, 0)
						t.Errorf("%s k=%d tiles=%d accumulate=%v: c[%d] = %v, two AVX2 kernels %v", layout.name, k, tiles, acc, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// bnBackFusedGemm gives the bits of its definition, Gemm's dy and then
// bnBackFused on it, and the weight gradient's Gemm of dOut and the
// normalised input, over whole tiles and a last short one, whole and
// masked channel vectors, and both ReLU floors; it writes nothing past
// its rows and channels.
func TestBnBackFusedGemm(t *testing.T) {
	if !use.gemmPair || !use.bnAll {
		t.Skip("no AVX-512 on this CPU: backRows computes dy apart")
	}
	rng := rand.New(rand.NewPCG(43, 43))
	const ld, lda = 41, 37
	for _, k := range []int{2, 4, 32} {
		b := randSlice(rng, 2*k*nr)
		for _, rows := range []int{1, 5, 6, 7, 12, 17} {
			a := randSlice(rng, rows*lda)
			x := randSlice(rng, (rows+1)*ld)
			for i := rows * ld; i < len(x); i++ {
				x[i] = float32(math.Inf(1)) // a row too many would add 0·∞ to sgx
			}
			for _, n := range []int{1, 8, 16, 17, 24, 32} {
				for _, floor := range []float32{0, float32(math.Inf(-1))} {
					scale, shift, ca := randSlice(rng, n+1), randSlice(rng, n+1), randSlice(rng, n+1)
					dx, sg, sgx := randSlice(rng, (rows+1)*ld), randSlice(rng, n+1), randSlice(rng, n+1)
					wantDx, wantSg, wantSgx := slices.Clone(dx), slices.Clone(sg), slices.Clone(sgx)
					// B's strips hold columns [0, 32); the definition reads its first n.
					bRows := make([]float32, k*n)
					for p := range k {
						for j := range n {
							bRows[p*n+j] = b[j/nr*k*nr+p*nr+j%nr]
						}
					}
					dy := make([]float32, rows*n)
					Gemm(false, false, rows, n, k, a, lda, bRows, n, false, dy, n, 1)
					bnBackFused(wantSg, wantSgx, wantDx, x, dy, scale, shift, ca, n, rows, ld, n, floor)
					normed, wantT := make([]float32, rows*n), make([]float32, k*2*nr)
					bnApply(normed, x, scale, shift, n, rows, ld, n, floor)
					Gemm(true, false, k, n, rows, a, lda, normed, n, false, wantT, 2*nr, 1)
					tw := make([]float32, k*2*nr)
					bnBackFusedGemm(k, a, lda, rows, b, make([]float32, mr*k), sg, sgx, dx, x, tw, ld, n, scale, shift, ca, floor)
					gotT := slices.Clone(wantT)
					for o := range k {
						copy(gotT[o*2*nr:o*2*nr+n], tw[o*2*nr:])
					}
					for _, pr := range [][2][]float32{{dx, wantDx}, {sg, wantSg}, {sgx, wantSgx}, {gotT, wantT}} {
						if !slices.Equal(pr[0], pr[1]) {
							i, _ := closeTo(pr[0], pr[1], 0, 0)
							t.Fatalf("k %d rows %d n %d floor %v: [%d] = %v, want %v", k, rows, n, floor, i, pr[0][i], pr[1][i])
						}
					}
				}
			}
		}
	}
}

// Gemm gives the same bits with and without the 512-bit kernel.
// GemmLongK against the definition, on one chunk and on several with a
// short last one, with the same bits for any worker count.
func TestGemmLongK(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 16))
	for _, s := range [][3]int{{5, 7, 300}, {32, 40, 3 * longKChunk}, {13, 70, 2*longKChunk + 77}} {
		M, N, K := s[0], s[1], s[2]
		lda, ldb, ldc := M+3, N+5, N+2
		A, B := randSlice(rng, K*lda), randSlice(rng, K*ldb)
		C0 := randSlice(rng, M*ldc) // overwritten, apart from the row padding
		want := slices.Clone(C0)
		GemmNaive(true, false, M, N, K, A, lda, B, ldb, 0, want, ldc)
		var first []float32
		for _, workers := range []int{1, 2, 3} {
			got := slices.Clone(C0)
			var partial []float32
			GemmLongK(M, N, K, A, lda, B, ldb, got, ldc, workers, &partial)
			if i, ok := closeTo(got, want, 1e-4*math.Sqrt(float64(K)), 1e-5); !ok {
				t.Fatalf("M%d N%d K%d workers=%d: C[%d] = %v, want %v", M, N, K, workers, i, got[i], want[i])
			}
			if first == nil {
				first = got
			} else if !slices.Equal(first, got) {
				t.Fatalf("M%d N%d K%d: %d workers gave different bits than 1", M, N, K, workers)
			}
		}
	}
}

func TestGemmSameBitsWithoutAVX512(t *testing.T) {
	if !use.gemmPair {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, s := range [][3]int{{7, 33, 9}, {64, 100, 300}, {13, 48, 1}, {300, 2100, 70}} {
		M, N, K := s[0], s[1], s[2]
		A, B, C0 := randSlice(rng, M*K), randSlice(rng, K*N), randSlice(rng, M*N)
		with, without := slices.Clone(C0), slices.Clone(C0)
		Gemm(false, false, M, N, K, A, K, B, N, true, with, N, 2)
		restore := withISA(isaAVX2)
		Gemm(false, false, M, N, K, A, K, B, N, true, without, N, 2)
		restore()
		if !slices.Equal(with, without) {
			t.Errorf("M%d N%d K%d: AVX-512 and AVX2 differ", M, N, K)
		}
	}
}

// The GEMMs of CondenseNet-86 training at batch 64 in channels-last layout:
// P = 64·H·W pixel rows.
var gemmShapes = []struct {
	name    string
	ta, tb  bool
	M, N, K int
}{
	{"1x1fwd/block1", false, true, 65536, 32, 64},  // out = in·Wᵀ, c = 64
	{"1x1dW/block1", true, false, 32, 64, 65536},   // dW = dOutᵀ·in
	{"1x1dIn/block1", false, false, 65536, 64, 32}, // dIn = dOut·W
	{"1x1fwd/block3", false, true, 4096, 128, 544}, // c = 544
	{"3x3fwd/block2/group", false, true, 16384, 4, 144},
	{"square512", false, false, 512, 512, 512},
}

func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range gemmShapes {
		lda, ldb := s.K, s.N
		if s.ta {
			lda = s.M
		}
		if s.tb {
			ldb = s.K
		}
		A := randSlice(rng, s.M*s.K)
		B := randSlice(rng, s.K*s.N)
		C := make([]float32, s.M*s.N)
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/m=%d,n=%d,k=%d/workers=%d", s.name, s.M, s.N, s.K, workers), func(b *testing.B) {
				for b.Loop() {
					Gemm(s.ta, s.tb, s.M, s.N, s.K, A, lda, B, ldb, false, C, s.N, workers)
				}
				b.ReportMetric(2*float64(s.M)*float64(s.N)*float64(s.K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkGemmNaive(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 256
	A, B, C := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
	for b.Loop() {
		GemmNaive(false, false, n, n, n, A, n, B, n, 0, C, n)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// The measured peak is at least what a GEMM reaches on one core, and
// within what any CPU of this decade can do. The two are timed in turns,
// best of three each, so that a load on the machine (other test packages)
// slows both alike: the peak measured once, under load, and the GEMM
// after it, unloaded, made this test fail now and then.
func TestPeakGFLOPs(t *testing.T) {
	if p := PeakGFLOPs(); p < 1 || p > 2000 {
		t.Fatalf("PeakGFLOPs = %.1f", p)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	const n = 256
	A, B, C := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
	var p, gemm float64
	for range 3 {
		p = max(p, measurePeak(fmaRounds))
		start := time.Now()
		for range 10 {
			Gemm(false, false, n, n, n, A, n, B, n, false, C, n, 1)
		}
		gemm = max(gemm, 10*2*n*n*n/time.Since(start).Seconds()/1e9)
	}
	if gemm > 1.2*p {
		t.Errorf("a GEMM ran at %.1f GFLOP/s, above the %.1f peak", gemm, p)
	}
	t.Logf("peak %.1f GFLOP/s per core; a 256³ GEMM on one worker %.1f", p, gemm)
}

// packAffineA packs what bnApply computes, strip by strip, zeros past its
// columns, over row counts that end in each of its loops (four rows whose
// stores spill into the next row's place, the last four, single rows).
func TestPackAffineA(t *testing.T) {
	if !use.bnAll {
		t.Skip("packAffineA is AVX-512 only; without it, gemmLongK transforms with bnApply")
	}
	rng := rand.New(rand.NewPCG(41, 41))
	const ld = 23
	for _, k := range []int{1, 3, 4, 5, 8, 9, 37} {
		testPackAffineA(t, rng, k, ld)
	}
}

func testPackAffineA(t *testing.T, rng *rand.Rand, k, ld int) {
	src, scale, shift := randSlice(rng, k*ld), randSlice(rng, ld), randSlice(rng, ld)
	for m := 1; m <= ld; m++ {
		for _, floor := range []float32{0, float32(math.Inf(-1))} {
			strips := (m + mr - 1) / mr
			got := randSlice(rng, strips*mr*k+1)
			last := got[len(got)-1]
			packAffineA(got[:strips*mr*k], src, k, ld, m, scale, shift, floor)
			y := make([]float32, k*m)
			bnApply(y, src, scale, shift, m, k, ld, m, floor)
			want := make([]float32, strips*mr*k)
			for p := range k {
				for i := range m {
					want[(i/mr*k+p)*mr+i%mr] = y[p*m+i]
				}
			}
			if !slices.Equal(got[:len(want)], want) || got[len(want)] != last {
				t.Fatalf("k %d m %d floor %v: packed %v, want %v", k, m, floor, got, want)
			}
		}
	}
}
