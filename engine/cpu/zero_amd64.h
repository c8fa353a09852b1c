// ZERO4(a, b, c, d) clears four vector registers: the accumulators the
// kernels start from.
#define ZERO4(a, b, c, d) \
	VPXORD a, a, a \
	VPXORD b, b, b \
	VPXORD c, c, c \
	VPXORD d, d, d
