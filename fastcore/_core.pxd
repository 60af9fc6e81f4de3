# The C-level interface shared by every fastcore kernel and environment.
#
# An environment is one .pyx file: `cdef class MyEnv(Env)` implementing reset() and step()
# without the GIL; the generic training loops in _core.pyx drive any Env.
from libc.stdint cimport int64_t, uint64_t


cdef struct Rng:
    uint64_t state


cdef inline Rng seeded_rng(uint64_t seed) noexcept nogil:
    cdef Rng r
    r.state = seed
    return r


cdef inline uint64_t rng_next(Rng* r) noexcept nogil:
    # splitmix64: tiny, fast, and trivially mirrored in pure Python (fastcore.reference).
    cdef uint64_t z
    r.state = r.state + <uint64_t>0x9E3779B97F4A7C15
    z = r.state
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline double rng_uniform(Rng* r) noexcept nogil:
    # uniform in [0, 1) from the top 53 bits
    return <double>(rng_next(r) >> 11) * (1.0 / 9007199254740992.0)


cdef inline int rng_below(Rng* r, int n) noexcept nogil:
    # uniform integer in [0, n); the modulo bias (< 2**-40 for small n) is mirrored by the twin
    return <int>((rng_next(r) >> 11) % <uint64_t>n)


cdef class Env:
    cdef public int n_states
    cdef public int n_actions
    # -> initial state index
    cdef int reset(self, Rng* rng) noexcept nogil
    # -> next state index; writes the reward and whether the episode terminated
    cdef int step(self, int state, int action, Rng* rng, double* reward, bint* done) noexcept nogil


# ---------------------------------------------------------------------------------------------
# Shared inline helpers (added by the fastcore kernels; environments may use them too). The
# pure-Python twins in fastcore.reference follow the same loops and arithmetic order.

cdef inline int argmax_row(const double* row, int n) noexcept nogil:
    # first index of the largest value (ties -> lowest index, like numpy.argmax on finite data)
    cdef int a, best = 0
    cdef double v = row[0]
    for a in range(1, n):
        if row[a] > v:
            v = row[a]
            best = a
    return best


cdef inline double max_row(const double* row, int n) noexcept nogil:
    cdef int a
    cdef double v = row[0]
    for a in range(1, n):
        if row[a] > v:
            v = row[a]
    return v


cdef inline int epsilon_greedy(Rng* rng, const double* row, int n, double epsilon) noexcept nogil:
    # one uniform draw for the explore test, a second draw only when exploring
    if rng_uniform(rng) < epsilon:
        return rng_below(rng, n)
    return argmax_row(row, n)


cdef inline double q_learning_target(const double* next_row, int n, double reward, bint done,
                                     double gamma) noexcept nogil:
    if done:
        return reward
    return reward + gamma * max_row(next_row, n)


# Where a training loop writes each episode's return and length: pointers into two numpy
# arrays the caller keeps (NULL when there are no episodes).
cdef struct EpisodeLog:
    double* returns
    int64_t* lengths


cdef inline EpisodeLog episode_log(double[::1] returns, int64_t[::1] lengths):
    cdef EpisodeLog log
    log.returns = &returns[0] if returns.shape[0] > 0 else NULL
    log.lengths = &lengths[0] if lengths.shape[0] > 0 else NULL
    return log


# The seedable generator as a Python object (its state is one splitmix64 word); environments'
# Python-side helpers (Env.py_reset / Env.py_step) advance it.
cdef class SplitMix64:
    cdef Rng rng
