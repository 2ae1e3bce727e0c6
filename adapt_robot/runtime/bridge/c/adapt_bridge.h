/*
 * adapt_bridge.h - C client of the adapt-robot bridge (UDP, loopback).
 *
 * Sends an observation to the adapter's BridgeServer and waits for the action, with a
 * timeout. POSIX sockets only; no allocation, no other dependency. The wire format is
 * documented in docs/bridge_protocol.md (protocol version ADAPT_BRIDGE_VERSION).
 *
 *   adapt_bridge b;
 *   if (adapt_bridge_open(&b, "127.0.0.1", 5555, 38, 4, 10) != ADAPT_BRIDGE_OK) ...
 *   rc = adapt_bridge_act(&b, obs, reward, reward_valid, done, action);
 *   adapt_bridge_close(&b);
 *
 * One adapt_bridge per thread; the functions are not reentrant on the same handle.
 */
#ifndef ADAPT_BRIDGE_H
#define ADAPT_BRIDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ADAPT_BRIDGE_VERSION 1
#define ADAPT_BRIDGE_HEADER_SIZE 28
/* Largest observation or action length this client handles (fixed buffers). */
#define ADAPT_BRIDGE_MAX_DIM 1024
#define ADAPT_BRIDGE_MAX_PACKET (ADAPT_BRIDGE_HEADER_SIZE + 4 * ADAPT_BRIDGE_MAX_DIM + 8)

/* Return codes (0 is success, errors are negative; errno is kept for system errors). */
enum adapt_bridge_code {
    ADAPT_BRIDGE_OK = 0,
    ADAPT_BRIDGE_EARG = -1,      /* NULL pointer, or a dimension of 0 or > ADAPT_BRIDGE_MAX_DIM */
    ADAPT_BRIDGE_ESOCKET = -2,   /* socket() or connect() failed (see errno) */
    ADAPT_BRIDGE_EADDR = -3,     /* host is not a dotted IPv4 address such as "127.0.0.1" */
    ADAPT_BRIDGE_ESEND = -4,     /* send() failed (see errno) */
    ADAPT_BRIDGE_ETIMEOUT = -5,  /* no reply with this request's sequence within the timeout */
    ADAPT_BRIDGE_ERECV = -6,     /* recv() or poll() failed, e.g. no server listening (errno) */
    ADAPT_BRIDGE_EREJECTED = -7  /* the server answered ERROR; reason in last_reject */
};

/* Status bits of a reply (adapt_bridge.last_status). */
#define ADAPT_BRIDGE_STATUS_FAULT 1u            /* observation unusable: safe action */
#define ADAPT_BRIDGE_STATUS_CONTROLLER_ERROR 2u /* controller raised: zero action */
#define ADAPT_BRIDGE_STATUS_EPISODE_END 4u      /* done acknowledged: zero action */

typedef struct adapt_bridge {
    int fd;                   /* UDP socket connected to the server; -1 when closed */
    uint16_t obs_dim;         /* observation length */
    uint16_t act_dim;         /* action length */
    int timeout_ms;           /* reply timeout of adapt_bridge_act */
    uint32_t seq;             /* sequence of the last request */
    int episode_start;        /* next request starts an episode */
    uint32_t last_status;     /* status bits of the last reply */
    uint32_t params_version;  /* adapted-parameters version of the last reply */
    uint32_t last_reject;     /* reason code of the last ERROR reply (see the docs) */
    uint32_t timeouts;        /* requests that timed out */
    uint32_t stale_replies;   /* replies to older requests, skipped */
    uint32_t bad_replies;     /* datagrams that were not valid replies, skipped */
    unsigned char buf[ADAPT_BRIDGE_MAX_PACKET];
} adapt_bridge;

/* Connect to the server at ipv4:port. Returns ADAPT_BRIDGE_OK or a negative code. */
int adapt_bridge_open(adapt_bridge *b, const char *ipv4, uint16_t port, uint16_t obs_dim,
                      uint16_t act_dim, int timeout_ms);

/*
 * Send obs[obs_dim] with the outcome of the previous action (reward, used when reward_valid
 * is non-zero; done non-zero ends the episode) and write the reply into action[act_dim].
 * The first request, and the first after done, are flagged as the start of an episode.
 */
int adapt_bridge_act(adapt_bridge *b, const float *obs, float reward, int reward_valid,
                     int done, float *action);

/* Flag the next request as the first observation of an episode. */
void adapt_bridge_new_episode(adapt_bridge *b);

/* Close the socket (safe to call twice). */
void adapt_bridge_close(adapt_bridge *b);

/* A short English description of a return code. */
const char *adapt_bridge_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* ADAPT_BRIDGE_H */
