/*
 * adapt_bridge.c - C client of the adapt-robot bridge; see adapt_bridge.h and
 * docs/bridge_protocol.md. Byte order is written explicitly (little-endian on the wire), so
 * the client is correct on any host byte order.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapt_bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TYPE_OBS 1u
#define TYPE_ACTION 2u
#define TYPE_ERROR 3u
#define OBS_FLAG_REWARD_NONE 1u
#define OBS_FLAG_EPISODE_START 2u

static const unsigned char MAGIC[4] = {'A', 'D', 'P', 'T'};

static void put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v & 0xffu);
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v) {
    int i;
    for (i = 0; i < 4; ++i) p[i] = (unsigned char)((v >> (8 * i)) & 0xffu);
}

static void put_u64(unsigned char *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; ++i) p[i] = (unsigned char)((v >> (8 * i)) & 0xffu);
}

static void put_f32(unsigned char *p, float f) {
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    put_u32(p, v);
}

static uint16_t get_u16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static float get_f32(const unsigned char *p) {
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

int adapt_bridge_open(adapt_bridge *b, const char *ipv4, uint16_t port, uint16_t obs_dim,
                      uint16_t act_dim, int timeout_ms) {
    struct sockaddr_in addr;
    if (b == NULL || ipv4 == NULL || obs_dim == 0 || act_dim == 0 ||
        obs_dim > ADAPT_BRIDGE_MAX_DIM || act_dim > ADAPT_BRIDGE_MAX_DIM || timeout_ms <= 0) {
        return ADAPT_BRIDGE_EARG;
    }
    memset(b, 0, sizeof *b);
    b->fd = -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, ipv4, &addr.sin_addr) != 1) return ADAPT_BRIDGE_EADDR;
    b->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (b->fd < 0) return ADAPT_BRIDGE_ESOCKET;
    if (connect(b->fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        int saved = errno;
        close(b->fd);
        b->fd = -1;
        errno = saved;
        return ADAPT_BRIDGE_ESOCKET;
    }
    b->obs_dim = obs_dim;
    b->act_dim = act_dim;
    b->timeout_ms = timeout_ms;
    b->episode_start = 1;
    return ADAPT_BRIDGE_OK;
}

static size_t encode_obs(adapt_bridge *b, const float *obs, float reward, int reward_valid,
                         int done) {
    unsigned char *p = b->buf;
    uint32_t flags = 0;
    uint16_t i;
    if (!reward_valid) flags |= OBS_FLAG_REWARD_NONE;
    if (b->episode_start) flags |= OBS_FLAG_EPISODE_START;
    memcpy(p, MAGIC, 4);
    put_u16(p + 4, ADAPT_BRIDGE_VERSION);
    put_u16(p + 6, TYPE_OBS);
    put_u32(p + 8, b->seq);
    put_u16(p + 12, b->obs_dim);
    put_u16(p + 14, b->act_dim);
    put_u32(p + 16, flags);
    put_u64(p + 20, (uint64_t)now_ns());
    p += ADAPT_BRIDGE_HEADER_SIZE;
    for (i = 0; i < b->obs_dim; ++i, p += 4) put_f32(p, obs[i]);
    put_f32(p, reward_valid ? reward : 0.0f);
    put_f32(p + 4, done ? 1.0f : 0.0f);
    return (size_t)(ADAPT_BRIDGE_HEADER_SIZE + 4 * b->obs_dim + 8);
}

/* 1: the reply to this request (action written), 0: skip it, <0: error code. */
static int take_reply(adapt_bridge *b, size_t n, float *action) {
    const unsigned char *p = b->buf;
    uint16_t type, act_dim, i;
    if (n < ADAPT_BRIDGE_HEADER_SIZE || memcmp(p, MAGIC, 4) != 0 ||
        get_u16(p + 4) != ADAPT_BRIDGE_VERSION) {
        b->bad_replies++;
        return 0;
    }
    if (get_u32(p + 8) != b->seq) {
        b->stale_replies++;
        return 0;
    }
    type = get_u16(p + 6);
    if (type == TYPE_ERROR && n == ADAPT_BRIDGE_HEADER_SIZE) {
        b->last_reject = get_u32(p + 16);
        return ADAPT_BRIDGE_EREJECTED;
    }
    act_dim = get_u16(p + 14);
    if (type != TYPE_ACTION || act_dim != b->act_dim ||
        n != (size_t)(ADAPT_BRIDGE_HEADER_SIZE + 4 * act_dim + 4)) {
        b->bad_replies++;
        return 0;
    }
    b->last_status = get_u32(p + 16);
    p += ADAPT_BRIDGE_HEADER_SIZE;
    for (i = 0; i < act_dim; ++i, p += 4) action[i] = get_f32(p);
    b->params_version = get_u32(p);
    return 1;
}

int adapt_bridge_act(adapt_bridge *b, const float *obs, float reward, int reward_valid,
                     int done, float *action) {
    int64_t deadline;
    size_t len;
    if (b == NULL || obs == NULL || action == NULL || b->fd < 0) return ADAPT_BRIDGE_EARG;
    b->seq++;
    len = encode_obs(b, obs, reward, reward_valid, done);
    deadline = now_ns() + (int64_t)b->timeout_ms * 1000000LL;
    if (send(b->fd, b->buf, len, 0) != (ssize_t)len) return ADAPT_BRIDGE_ESEND;
    for (;;) {
        struct pollfd pfd;
        ssize_t n;
        int rc, wait_ms;
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            b->timeouts++;
            return ADAPT_BRIDGE_ETIMEOUT;
        }
        wait_ms = (int)((left + 999999) / 1000000);
        pfd.fd = b->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        rc = poll(&pfd, 1, wait_ms);
        if (rc < 0) {
            if (errno == EINTR) continue;
            return ADAPT_BRIDGE_ERECV;
        }
        if (rc == 0) continue;
        n = recv(b->fd, b->buf, sizeof b->buf, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return ADAPT_BRIDGE_ERECV;
        }
        rc = take_reply(b, (size_t)n, action);
        if (rc == 1) {
            b->episode_start = done ? 1 : 0;
            return ADAPT_BRIDGE_OK;
        }
        if (rc < 0) return rc;
    }
}

void adapt_bridge_new_episode(adapt_bridge *b) {
    if (b != NULL) b->episode_start = 1;
}

void adapt_bridge_close(adapt_bridge *b) {
    if (b != NULL && b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}

const char *adapt_bridge_strerror(int code) {
    switch (code) {
        case ADAPT_BRIDGE_OK: return "ok";
        case ADAPT_BRIDGE_EARG: return "invalid argument (NULL pointer, closed handle or bad dimension)";
        case ADAPT_BRIDGE_ESOCKET: return "cannot create or connect the UDP socket";
        case ADAPT_BRIDGE_EADDR: return "host is not a dotted IPv4 address";
        case ADAPT_BRIDGE_ESEND: return "send failed";
        case ADAPT_BRIDGE_ETIMEOUT: return "timed out waiting for the reply";
        case ADAPT_BRIDGE_ERECV: return "receive failed (is the bridge server running on that port?)";
        case ADAPT_BRIDGE_EREJECTED: return "the server rejected the request (see last_reject)";
        default: return "unknown error code";
    }
}
