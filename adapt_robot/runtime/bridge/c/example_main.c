/*
 * example_main.c - drive the adapter through the bridge for one episode.
 *
 *   adapt_bridge_example PORT OBS_DIM ACT_DIM STEPS
 *
 * Step t sends obs[i] = 0.1*(t+1) - 0.05*i, with the reward of the previous step
 * (reward = -(sum of the previous action's squares)); after STEPS steps it sends done.
 * Replies are awaited for up to 1 s.
 * Prints one line per step: "step T action A0 A1 ... status S version V", then
 * "episode_end status S". Exits 1 with a message on stderr when a call fails.
 */
#include "adapt_bridge.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "adapt_bridge_example: %s: %s\n", what, adapt_bridge_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    adapt_bridge b;
    float obs[ADAPT_BRIDGE_MAX_DIM];
    float action[ADAPT_BRIDGE_MAX_DIM];
    float reward = 0.0f;
    int port, obs_dim, act_dim, steps, t, i, rc;
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT OBS_DIM ACT_DIM STEPS\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    obs_dim = atoi(argv[2]);
    act_dim = atoi(argv[3]);
    steps = atoi(argv[4]);
    if (port <= 0 || port > 65535 || obs_dim <= 0 || obs_dim > ADAPT_BRIDGE_MAX_DIM ||
        act_dim <= 0 || act_dim > ADAPT_BRIDGE_MAX_DIM || steps < 0) {
        fprintf(stderr, "adapt_bridge_example: arguments out of range\n");
        return 2;
    }
    rc = adapt_bridge_open(&b, "127.0.0.1", (uint16_t)port, (uint16_t)obs_dim,
                           (uint16_t)act_dim, 1000);
    if (rc != ADAPT_BRIDGE_OK) return fail("open", rc);
    for (t = 0; t <= steps; ++t) {
        int done = t == steps;
        for (i = 0; i < obs_dim; ++i) obs[i] = 0.1f * (float)(t + 1) - 0.05f * (float)i;
        rc = adapt_bridge_act(&b, obs, reward, t > 0, done, action);
        if (rc != ADAPT_BRIDGE_OK) {
            adapt_bridge_close(&b);
            return fail("act", rc);
        }
        if (done) {
            printf("episode_end status %u\n", (unsigned)b.last_status);
            break;
        }
        printf("step %d action", t);
        reward = 0.0f;
        for (i = 0; i < act_dim; ++i) {
            printf(" %.9g", (double)action[i]);
            reward -= action[i] * action[i];
        }
        printf(" status %u version %u\n", (unsigned)b.last_status, (unsigned)b.params_version);
    }
    adapt_bridge_close(&b);
    return 0;
}
