// Kernels of the CUDA backend, compiled at first use by NVRTC. Each is the
// CUDA form of the CPU backend's function of the same name (engine/cpu),
// which is its definition; tensors are channels-last with row strides, as
// the engine package describes. Element counts fit in int; offsets are
// computed in long long. Kernels named *_bwd accumulate (+=).

#define LOOP(i, n) \
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)(n); \
	     i += (long long)blockDim.x * gridDim.x)

// A Pixel is a position in an (N, H, W) grid of channels-last rows.
struct Pixel {
	long long b;
	int y, x;
};

// pixel splits row q of an (N, h, w) grid.
__device__ __forceinline__ Pixel pixel(long long q, int h, int w) {
	Pixel p;
	p.b = q / w / h;
	p.y = (int)(q / w % h);
	p.x = (int)(q % w);
	return p;
}

// relu keeps NaN, as Go's max does, so a diverging net still shows a NaN loss.
__device__ __forceinline__ float relu(float v) { return v < 0.f ? 0.f : v; }

extern "C" __global__ void relu_fwd(float* out, const float* in, int p, int c, int ldIn, int ldOut) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		out[r * ldOut + j] = relu(in[r * ldIn + j]);
	}
}

extern "C" __global__ void relu_bwd(float* dIn, const float* dOut, const float* out, int p, int c, int ldIn, int ldOut) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		if (out[r * ldOut + j] > 0.f) dIn[r * ldIn + j] += dOut[r * ldOut + j];
	}
}

extern "C" __global__ void avgpool2_fwd(float* out, const float* in, int n, int h, int w, int c, int ldIn, int ldOut) {
	int oh = h / 2, ow = w / 2;
	LOOP(i, (long long)n * oh * ow * c) {
		int j = i % c;
		Pixel o = pixel(i / c, oh, ow);
		long long i00 = ((o.b * h + 2 * o.y) * w + 2 * o.x) * ldIn + j;
		out[(i / c) * ldOut + j] =
		    0.25f * (in[i00] + in[i00 + ldIn] + in[i00 + (long long)w * ldIn] + in[i00 + (long long)(w + 1) * ldIn]);
	}
}

// One thread per input element: each belongs to at most one window.
extern "C" __global__ void avgpool2_bwd(float* dIn, const float* dOut, int n, int h, int w, int c, int ldIn, int ldOut) {
	int oh = h / 2, ow = w / 2;
	LOOP(i, (long long)n * h * w * c) {
		int j = i % c;
		Pixel p = pixel(i / c, h, w);
		int oy = p.y / 2, ox = p.x / 2;
		if (oy < oh && ox < ow)
			dIn[(i / c) * ldIn + j] += 0.25f * dOut[((p.b * oh + oy) * ow + ox) * ldOut + j];
	}
}

extern "C" __global__ void gap_fwd(float* out, const float* in, int n, int hw, int c, int ldIn) {
	LOOP(i, (long long)n * c) {
		long long b = i / c;
		int j = i % c;
		float s = 0.f;
		for (int p = 0; p < hw; p++) s += in[(b * hw + p) * ldIn + j];
		out[i] = s * (1.f / hw);
	}
}

extern "C" __global__ void gap_bwd(float* dIn, const float* dOut, int n, int hw, int c, int ldIn) {
	float inv = 1.f / hw;
	LOOP(i, (long long)n * hw * c) {
		int j = i % c;
		long long q = i / c; // b·hw + p
		long long b = q / hw;
		dIn[q * ldIn + j] += dOut[b * c + j] * inv;
	}
}

extern "C" __global__ void bias_fwd(float* out, const float* bias, int n, int o) {
	LOOP(i, (long long)n * o) out[i] += bias[i % o];
}

extern "C" __global__ void bias_bwd(float* dBias, const float* dOut, int n, int o) {
	LOOP(j, o) {
		float s = 0.f;
		for (int b = 0; b < n; b++) s += dOut[(long long)b * o + j];
		dBias[j] += s;
	}
}

// One block: each thread takes examples, then a fixed tree adds their
// losses, so the mean does not depend on timing. blockDim.x is 256.
extern "C" __global__ void xent_fwd(float* loss, float* probs, const float* logits, const int* labels, int n, int k) {
	__shared__ double part[256];
	double acc = 0;
	for (int b = threadIdx.x; b < n; b += blockDim.x) {
		const float* z = logits + (long long)b * k;
		float* p = probs + (long long)b * k;
		float m = z[0];
		for (int j = 1; j < k; j++) m = fmaxf(m, z[j]);
		double s = 0;
		for (int j = 0; j < k; j++) {
			double e = exp((double)(z[j] - m));
			p[j] = (float)e;
			s += e;
		}
		for (int j = 0; j < k; j++) p[j] = (float)((double)p[j] / s);
		acc += log(s) - (double)(z[labels[b]] - m);
	}
	part[threadIdx.x] = acc;
	__syncthreads();
	for (int half = blockDim.x / 2; half > 0; half /= 2) {
		if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
		__syncthreads();
	}
	if (threadIdx.x == 0) loss[0] = (float)(part[0] / n);
}

extern "C" __global__ void xent_bwd(float* dLogits, const float* probs, const int* labels, int n, int k) {
	float inv = 1.f / n;
	LOOP(i, (long long)n * k) {
		float v = dLogits[i] + probs[i] * inv;
		if (i % k == labels[i / k]) v -= inv;
		dLogits[i] = v;
	}
}

// A counter-based generator: element i's uniform value depends on the seed
// and i only, so masks need no state and no ordering between threads.
__device__ __forceinline__ float uniform(unsigned long long seed, long long i) {
	unsigned long long z = seed + 0x9e3779b97f4a7c15ULL * (unsigned long long)(i + 1);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (float)(z >> 40) * (1.f / 16777216.f);
}

extern "C" __global__ void dropout_mask(float* mask, int n, float p, unsigned long long seed) {
	float keep = 1.f / (1.f - p);
	LOOP(i, n) mask[i] = uniform(seed, i) < p ? 0.f : keep;
}

extern "C" __global__ void dropout_fwd(float* out, const float* in, const float* mask, int p, int c, int ldIn, int ldOut) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		out[r * ldOut + j] = in[r * ldIn + j] * mask[i];
	}
}

extern "C" __global__ void dropout_bwd(float* dIn, const float* dOut, const float* mask, int p, int c, int ldIn, int ldOut) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		dIn[r * ldIn + j] += dOut[r * ldOut + j] * mask[i];
	}
}

extern "C" __global__ void mask_fwd(float* wm, const float* w, const float* mask, int n) {
	LOOP(i, n) wm[i] = w[i] * mask[i];
}

extern "C" __global__ void mask_bwd(float* dW, const float* dWm, const float* mask, int n) {
	LOOP(i, n) dW[i] += dWm[i] * mask[i];
}

extern "C" __global__ void index_select_fwd(float* out, const float* in, const int* idx, int p, int m, int ldIn, int ldOut) {
	LOOP(i, (long long)p * m) {
		long long r = i / m;
		int j = i % m;
		out[r * ldOut + j] = in[r * ldIn + idx[j]];
	}
}

// An index may repeat, so the gradient adds atomically.
extern "C" __global__ void index_select_bwd(float* dIn, const float* dOut, const int* idx, int p, int m, int ldIn, int ldOut) {
	LOOP(i, (long long)p * m) {
		long long r = i / m;
		int j = i % m;
		atomicAdd(&dIn[r * ldIn + idx[j]], dOut[r * ldOut + j]);
	}
}

// out[:, k·G+g] = in[:, g·(C/G)+k]
extern "C" __global__ void shuffle_fwd(float* out, const float* in, int p, int c, int g, int ldIn, int ldOut) {
	int cg = c / g;
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		out[r * ldOut + j] = in[r * ldIn + (j % g) * cg + j / g];
	}
}

extern "C" __global__ void shuffle_bwd(float* dIn, const float* dOut, int p, int c, int g, int ldIn, int ldOut) {
	int cg = c / g;
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c; // = gi·cg + k
		dIn[r * ldIn + j] += dOut[r * ldOut + (j % cg) * g + j / cg];
	}
}

extern "C" __global__ void sgd_nesterov(float* w, const float* g, float* v, int n, float lr, float momentum, float wd) {
	LOOP(i, n) {
		float d = g[i] + wd * w[i];
		float vi = momentum * v[i] + d;
		v[i] = vi;
		w[i] -= lr * (d + momentum * vi);
	}
}

// c[g] = beta·c[g] + the sum of part[g]'s slots in order, part being
// (batch, slots, m, n); beta 0 leaves c unread, as in a GEMM.
extern "C" __global__ void sum_pieces(float* c, const float* part, int batch, int slots, int m, int n, int ldc,
                                      int strideC, float beta) {
	long long out = (long long)m * n;
	LOOP(i, batch * out) {
		long long g = i / out, e = i % out;
		const float* p = part + g * slots * out + e;
		float s = 0.f;
		for (int k = 0; k < slots; k++) s += p[k * out];
		float* o = c + g * strideC + e / n * ldc + e % n;
		*o = beta == 0.f ? s : beta * *o + s;
	}
}

// BatchNorm. Per-channel sums are taken in float over blocks of BN_ROWS
// rows (grid.y), one partial per (channel, block), and a finalize kernel
// adds each channel's partials in double with a fixed tree: no atomics, so
// the result is the same on every run. Sums blocks are 32 channels × 8 row
// lanes; finalize blocks are 32 lanes × 8 channels.
#define BN_ROWS 256

__device__ __forceinline__ void bn_reduce(float* b1, float* b2, float s1, float s2, int c, int ch) {
	__shared__ float t1[8][32], t2[8][32];
	t1[threadIdx.y][threadIdx.x] = s1;
	t2[threadIdx.y][threadIdx.x] = s2;
	__syncthreads();
	if (threadIdx.y == 0 && ch < c) {
		float a = 0.f, b = 0.f;
		for (int y = 0; y < 8; y++) {
			a += t1[y][threadIdx.x];
			b += t2[y][threadIdx.x];
		}
		b1[(long long)ch * gridDim.y + blockIdx.y] = a;
		b2[(long long)ch * gridDim.y + blockIdx.y] = b;
	}
}

// bn_total returns channel ch's totals of the (C, blocks) partials to
// every lane: lane l adds blocks l, l+32, ..., then a fixed tree adds the
// 32 lanes, so the sum's order never depends on timing.
__device__ __forceinline__ void bn_total(double* s1, double* s2, const float* b1, const float* b2, int blocks, int c, int ch) {
	__shared__ double t1[8][32], t2[8][32];
	double a = 0, b = 0;
	if (ch < c)
		for (int k = threadIdx.x; k < blocks; k += 32) {
			a += b1[(long long)ch * blocks + k];
			b += b2[(long long)ch * blocks + k];
		}
	t1[threadIdx.y][threadIdx.x] = a;
	t2[threadIdx.y][threadIdx.x] = b;
	__syncthreads();
	for (int half = 16; half > 0; half /= 2) {
		if (threadIdx.x < half) {
			t1[threadIdx.y][threadIdx.x] += t1[threadIdx.y][threadIdx.x + half];
			t2[threadIdx.y][threadIdx.x] += t2[threadIdx.y][threadIdx.x + half];
		}
		__syncthreads();
	}
	*s1 = t1[threadIdx.y][0];
	*s2 = t2[threadIdx.y][0];
}

extern "C" __global__ void bn_sums(float* b1, float* b2, const float* x, int p, int c, int ldx) {
	int ch = blockIdx.x * 32 + threadIdx.x;
	int r0 = blockIdx.y * BN_ROWS, r1 = min(p, r0 + BN_ROWS);
	float s1 = 0.f, s2 = 0.f;
	if (ch < c)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			float v = x[(long long)r * ldx + ch];
			s1 += v;
			s2 += v * v;
		}
	bn_reduce(b1, b2, s1, s2, c, ch);
}

// g is dy where the fused ReLU passed (y > 0), else 0.
__device__ __forceinline__ float bn_grad(float dy, float y, int relu) { return (!relu || y > 0.f) ? dy : 0.f; }

extern "C" __global__ void bn_back_sums(float* b1, float* b2, const float* x, const float* dy, const float* y, int p, int c, int ldx, int ldy, int relu) {
	int ch = blockIdx.x * 32 + threadIdx.x;
	int r0 = blockIdx.y * BN_ROWS, r1 = min(p, r0 + BN_ROWS);
	float s1 = 0.f, s2 = 0.f;
	if (ch < c)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			float g = bn_grad(dy[(long long)r * ldy + ch], y[(long long)r * ldy + ch], relu);
			s1 += g;
			s2 += g * x[(long long)r * ldx + ch];
		}
	bn_reduce(b1, b2, s1, s2, c, ch);
}

// Batch statistics, running averages (PyTorch: biased variance to
// normalise, unbiased into the running one) and the affine coefficients
// y = a·x + b.
extern "C" __global__ void bn_train_finalize(float* mean, float* rstd, float* ca, float* cb, float* runMean, float* runVar,
                                             const float* gamma, const float* beta, const float* b1, const float* b2,
                                             int blocks, int c, int p, float eps, float momentum) {
	int ch = blockIdx.x * 8 + threadIdx.y;
	double s1, s2;
	bn_total(&s1, &s2, b1, b2, blocks, c, ch);
	if (threadIdx.x == 0 && ch < c) {
		double cnt = p, m = s1 / cnt;
		double v = fmax(s2 / cnt - m * m, 0.0);
		float mf = (float)m, rf = (float)(1.0 / sqrt(v + (double)eps));
		mean[ch] = mf;
		rstd[ch] = rf;
		double mo = momentum;
		runMean[ch] = (float)((1 - mo) * runMean[ch] + mo * m);
		runVar[ch] = (float)((1 - mo) * runVar[ch] + mo * v * cnt / (cnt - 1));
		float a = gamma[ch] * rf;
		ca[ch] = a;
		cb[ch] = beta[ch] - mf * a;
	}
}

extern "C" __global__ void bn_infer_coeffs(float* ca, float* cb, const float* gamma, const float* beta,
                                           const float* runMean, const float* runVar, int c, float eps) {
	LOOP(ch, c) {
		float rf = (float)(1.0 / sqrt((double)runVar[ch] + (double)eps));
		float a = gamma[ch] * rf;
		ca[ch] = a;
		cb[ch] = beta[ch] - runMean[ch] * a;
	}
}

// y[:, j] = [relu](a[j]·x[:, src] + b[j]), src = idx[j] when indexed (a
// fused index-select or shuffle), else j.
extern "C" __global__ void bn_apply(float* y, const float* x, const float* ca, const float* cb, const int* idx,
                                    int p, int c, int ldx, int ldy, int relu) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		float v = x[r * ldx + (idx ? idx[j] : j)] * ca[j] + cb[j];
		y[r * ldy + j] = relu ? (v < 0.f ? 0.f : v) : v;
	}
}

// dβ = Σg; dγ = Σg·x̂ = rstd·(Σg·x − mean·Σg); dx = γ·rstd·(g − Σg/P − x̂·Σg·x̂/P),
// which is a·g + b·x + c per channel.
extern "C" __global__ void bn_back_finalize(float* ca, float* cb, float* cc, float* dGamma, float* dBeta,
                                            const float* b1, const float* b2, const float* mean, const float* rstd,
                                            const float* gamma, int blocks, int c, int p) {
	int ch = blockIdx.x * 8 + threadIdx.y;
	double sg, sgx;
	bn_total(&sg, &sgx, b1, b2, blocks, c, ch);
	if (threadIdx.x == 0 && ch < c) {
		double m = mean[ch], rs = rstd[ch], cnt = p;
		double sgxhat = rs * (sgx - m * sg);
		dBeta[ch] += (float)sg;
		dGamma[ch] += (float)sgxhat;
		double gr = (double)gamma[ch] * rs, k1 = sg / cnt, k2 = sgxhat / cnt;
		ca[ch] = (float)gr;
		cb[ch] = (float)(-gr * rs * k2);
		cc[ch] = (float)(gr * (m * rs * k2 - k1));
	}
}

extern "C" __global__ void bn_back_apply(float* dx, const float* x, const float* dy, const float* y,
                                         const float* ca, const float* cb, const float* cc,
                                         int p, int c, int ldx, int ldy, int relu) {
	LOOP(i, (long long)p * c) {
		long long r = i / c;
		int j = i % c;
		float g = bn_grad(dy[r * ldy + j], y[r * ldy + j], relu);
		dx[r * ldx + j] += ca[j] * g + cb[j] * x[r * ldx + j] + cc[j];
	}
}

// Patch matrix: row q is pixel q of an (n, h, w) grid; column
// t = ch·R·S + r·S + s holds channel ch of src, an (n, sh, sw) grid, at
// (y·stride + off + sign·r, x·stride + off + sign·s), or 0 outside it.
// A convolution's input patches (im2col) have sign +1 and off −pad, which
// puts each group's C/G·R·S columns together in the order of PyTorch's
// (K, C/G, R, S) weights. The output gradient of a stride-1 convolution,
// per input pixel, has sign −1 and off +pad: tap (r, s) of input pixel q
// fed output pixel (y + pad − r, x + pad − s). One thread per (row,
// channel) writes that channel's R·S columns.
extern "C" __global__ void patches(float* col, const float* src, int n, int h, int w, int c, int sh, int sw,
                                   int R, int S, int stride, int off, int sign, int ldSrc) {
	int rs = R * S;
	LOOP(i, (long long)n * h * w * c) {
		int ch = i % c;
		long long q = i / c;
		Pixel p = pixel(q, h, w);
		float* dst = col + (q * c + ch) * rs;
		for (int r = 0; r < R; r++) {
			int y = p.y * stride + off + sign * r;
			for (int s = 0; s < S; s++) {
				int x = p.x * stride + off + sign * s;
				dst[r * S + s] = (y >= 0 && y < sh && x >= 0 && x < sw) ? src[((p.b * sh + y) * sw + x) * ldSrc + ch] : 0.f;
			}
		}
	}
}

// wt = w with each group's (K/G, C/G·R·S) block rearranged to
// (K/G·R·S, C/G): wt[(k·RS + t)·cg + c] = w[(k·cg + c)·RS + t] for k over
// all K outputs, since group g's block starts at g·K/G·cg·RS in both.
extern "C" __global__ void weight_t(float* wt, const float* w, int k, int cg, int rs) {
	LOOP(i, (long long)k * cg * rs) {
		long long t = i % rs, c = i / rs % cg, kk = i / rs / cg;
		wt[(kk * rs + t) * cg + c] = w[i];
	}
}

// The gradient of weight_t: dW += dwt, rearranged back.
extern "C" __global__ void weight_t_bwd(float* dW, const float* dwt, int k, int cg, int rs) {
	LOOP(i, (long long)k * cg * rs) {
		long long t = i % rs, c = i / rs % cg, kk = i / rs / cg;
		dW[i] += dwt[(kk * rs + t) * cg + c];
	}
}

// The inverse: each input element gathers the patch entries it was
// copied to, so no two threads write one element.
extern "C" __global__ void col2im(float* dIn, const float* dCol, int n, int h, int w, int c, int oh, int ow,
                                  int R, int S, int stride, int pad, int ldIn) {
	int rs = R * S, crs = c * rs;
	LOOP(i, (long long)n * h * w * c) {
		int ch = i % c;
		Pixel p = pixel(i / c, h, w);
		float acc = 0.f;
		for (int r = 0; r < R; r++) {
			int ty = p.y + pad - r;
			if (ty < 0 || ty % stride != 0 || ty / stride >= oh) continue;
			for (int s = 0; s < S; s++) {
				int tx = p.x + pad - s;
				if (tx < 0 || tx % stride != 0 || tx / stride >= ow) continue;
				acc += dCol[((p.b * oh + ty / stride) * ow + tx / stride) * crs + ch * rs + r * S + s];
			}
		}
		dIn[(i / c) * ldIn + ch] += acc;
	}
}
