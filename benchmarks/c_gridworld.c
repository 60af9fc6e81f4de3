/* Plain C reference loop for the fastcore benchmark: tabular Q-learning on the original article's
 * GridWorld, written the way one would by hand in C (no Python anywhere).
 *
 * Same algorithm and RNG as fastcore.train_gridworld, so the final Q-table is bit-identical
 * (the benchmark checks an FNV-1a hash of its bytes):
 *   splitmix64; per step u = uniform() and explore iff u < epsilon (then a = below(4)), else
 *   greedy (ties -> lowest index); right/down/left/up, off-grid moves stay put; reward +1 at the
 *   goal (done) else -0.1; target = r if done else r + gamma * max Q[s2];
 *   Q[s,a] = Q[s,a] + alpha * (target - Q[s,a]).
 *
 * Build: cc -O3 -o c_gridworld c_gridworld.c
 * Usage: c_gridworld SIZE EPISODES [ALPHA GAMMA EPSILON SEED MAX_STEPS]
 * Prints one line: updates=N seconds=T cpu_seconds=C updates_per_s=R q_fnv1a=HEX
 * (seconds: wall clock of the training loop; cpu_seconds: CPU time of this process in it)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ACTIONS 4

static inline uint64_t rng_next(uint64_t *state) {
    uint64_t z;
    *state += 0x9E3779B97F4A7C15ULL;
    z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double rng_uniform(uint64_t *state) {
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static inline int rng_below(uint64_t *state, int n) {
    return (int)((rng_next(state) >> 11) % (uint64_t)n);
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SIZE EPISODES [ALPHA GAMMA EPSILON SEED MAX_STEPS]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    long long episodes = atoll(argv[2]);
    double alpha = argc > 3 ? atof(argv[3]) : 0.1;
    double gamma = argc > 4 ? atof(argv[4]) : 0.9;
    double epsilon = argc > 5 ? atof(argv[5]) : 0.1;
    uint64_t rng = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
    long long max_steps = argc > 7 ? atoll(argv[7]) : 1000LL * n * n;
    if (n < 1 || episodes < 0 || max_steps < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    double *q = calloc((size_t)n * n * N_ACTIONS, sizeof(double));
    if (!q) return 1;
    const int goal_r = n - 1, goal_c = n - 1;
    long long updates = 0;

    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long long ep = 0; ep < episodes; ep++) {
        int r = 0, c = 0;                       /* reset: top-left */
        for (long long t = 0; t < max_steps; t++) {
            double *row = q + (r * n + c) * N_ACTIONS;
            int a;
            if (rng_uniform(&rng) < epsilon) {
                a = rng_below(&rng, N_ACTIONS);
            } else {
                a = 0;
                for (int b = 1; b < N_ACTIONS; b++)
                    if (row[b] > row[a]) a = b;
            }
            int nr = r, nc = c;
            switch (a) {
                case 0: if (c + 1 < n) nc = c + 1; break;   /* right */
                case 1: if (r + 1 < n) nr = r + 1; break;   /* down */
                case 2: if (c > 0) nc = c - 1; break;       /* left */
                default: if (r > 0) nr = r - 1; break;      /* up */
            }
            int done = (nr == goal_r && nc == goal_c);
            double reward = done ? 1.0 : -0.1;
            double target;
            if (done) {
                target = reward;
            } else {
                const double *nrow = q + (nr * n + nc) * N_ACTIONS;
                double mx = nrow[0];
                for (int b = 1; b < N_ACTIONS; b++)
                    if (nrow[b] > mx) mx = nrow[b];
                target = reward + gamma * mx;
            }
            row[a] = row[a] + alpha * (target - row[a]);
            updates++;
            r = nr;
            c = nc;
            if (done) break;
        }
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0;
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

    uint64_t h = 0xcbf29ce484222325ULL;            /* FNV-1a over the bytes of the table */
    const unsigned char *bytes = (const unsigned char *)q;
    for (size_t i = 0; i < (size_t)n * n * N_ACTIONS * sizeof(double); i++) {
        h ^= bytes[i];
        h *= 0x100000001b3ULL;
    }
    printf("updates=%lld seconds=%.6f cpu_seconds=%.6f updates_per_s=%.1f q_fnv1a=%016llx\n",
           updates, dt, cpu, dt > 0 ? (double)updates / dt : 0.0, (unsigned long long)h);
    free(q);
    return 0;
}
