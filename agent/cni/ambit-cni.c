// ambit-cni: ambit's chained CNI plugin. The container runtime runs it after the primary plugin
// (bridge, calico, ...) with the pod's network configuration on stdin (prevResult included). It
// relays the request to the node agent over a Unix socket and lets the agent decide; the agent
// answers once the pod is captured (or refuses), so the pod's containers never start uncaptured.
// All the logic is the agent's (agent/cni/server.ts); this file only carries bytes, reads a few
// fields of the configuration, and fails closed when the agent is not there to ask.
//
// It runs in the host's mount namespace, where there is no Node.js: plain C, linked statically.
//
// Wire protocol (agent/cni/protocol.ts is the other end), one request per connection:
//   request:  "AMBIT-CNI 1\n", then NAME=VALUE lines (the CNI_* environment), "\n", then stdin as
//             given; the plugin then shuts its side down.
//   reply:    "<exit status>\n", then what to print: nothing means "print prevResult unchanged".
//
// Without an answer (no socket, refused, timed out, garbled), the plugin decides alone: the pod is
// held (ADD fails with code 11, try again later) unless its namespace is known not to be enrolled,
// i.e. the agent's list of enrolled namespaces (the file "enrolled-namespaces" beside the socket)
// exists and does not name it, or the namespace is in "exclude_namespaces" of the configuration.
//
// Configuration fields (the plugin's entry in the conflist; the agent's installer writes it):
//   "type": "ambit-cni", "socket": "/var/run/ambit/cni.sock", "timeout_seconds": 20,
//   "exclude_namespaces": ["kube-system", "ambit-system"]

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_INPUT (1 << 20)
#define MAX_REPLY (1 << 20)
#define MAX_EXCLUDED 64
#define MAX_NAME 256
#define DEFAULT_SOCKET "/var/run/ambit/cni.sock"
#define DEFAULT_TIMEOUT_MS 20000
// A DEL never waits long for an agent: it succeeds whatever happens.
#define DEL_TIMEOUT_MS 5000

static const char *supported[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
static const char *env_names[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

// CNI error codes (SPEC.md, "Error"): the ones this plugin gives itself.
enum { E_VERSION = 1, E_ENV = 4, E_IO = 5, E_DECODE = 6, E_CONFIG = 7, E_TRY_LATER = 11 };

struct span {
  const char *p;
  size_t n;
};

struct config {
  char cni_version[32];
  char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
  long timeout_ms;
  int excluded_count;
  char excluded[MAX_EXCLUDED][MAX_NAME];
  struct span prev_result;
};

static const char *reply_version = "1.0.0";

// ---- output -------------------------------------------------------------------------------

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/** Prints a CNI error result and ends the process with status 1. */
static void fail(int code, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("{\"cniVersion\":");
  json_string(stdout, reply_version);
  printf(",\"code\":%d,\"msg\":", code);
  json_string(stdout, msg);
  printf("}\n");
  fflush(stdout);
  exit(1);
}

// ---- a small JSON reader: enough to find top-level fields and step over the rest ---------------

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int hex4(const char *p, const char *end, unsigned *out) {
  if (end - p < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/**
 * Reads a string starting at its opening quote; decodes it into out (NUL-terminated, UTF-8) when
 * out is given. Returns the position after the closing quote, or NULL if malformed or too long.
 */
static const char *read_string(const char *p, const char *end, char *out, size_t cap) {
  size_t n = 0;
  if (p >= end || *p != '"') return NULL;
  p++;
  while (p < end && *p != '"') {
    unsigned cp;
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p != '\\') {
      cp = (unsigned char)*p++;
      if (out) {
        if (n + 1 >= cap) return NULL;
        out[n++] = (char)cp;
      }
      continue;
    }
    if (++p >= end) return NULL;
    switch (*p++) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (hex4(p, end, &cp)) return NULL;
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          unsigned lo;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) || lo < 0xdc00 || lo > 0xdfff) return NULL;
          p += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        break;
      default: return NULL;
    }
    if (out) {
      char buf[4];
      size_t k;
      if (cp < 0x80) buf[0] = (char)cp, k = 1;
      else if (cp < 0x800) buf[0] = (char)(0xc0 | cp >> 6), buf[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
      else if (cp < 0x10000) buf[0] = (char)(0xe0 | cp >> 12), buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), buf[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
      else buf[0] = (char)(0xf0 | cp >> 18), buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f)), buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), buf[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
      if (n + k >= cap) return NULL;
      memcpy(out + n, buf, k);
      n += k;
    }
  }
  if (p >= end) return NULL;
  if (out) out[n] = 0;
  return p + 1;
}

/** Steps over one value; returns the position after it, or NULL if malformed. */
static const char *skip_value(const char *p, const char *end, int depth) {
  p = skip_ws(p, end);
  if (p >= end || depth > 64) return NULL;
  if (*p == '"') return read_string(p, end, NULL, 0);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = skip_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = read_string(skip_ws(p, end), end, NULL, 0);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
      }
      p = skip_value(p, end, depth + 1);
      if (!p) return NULL;
      p = skip_ws(p, end);
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      if (p < end && *p == close) return p + 1;
      return NULL;
    }
  }
  // A number, true, false or null: a run of the characters they are made of.
  const char *start = p;
  while (p < end && *p && strchr("+-.0123456789eEtruefalsn", *p)) p++;
  return p > start ? p : NULL;
}

/** Reads the configuration's fields this plugin uses; returns an error message, or NULL. */
static const char *parse_config(const char *in, size_t len, struct config *c) {
  const char *p = skip_ws(in, in + len), *end = in + len;
  static char key[128];
  if (p >= end || *p != '{') return "the network configuration on stdin is not a JSON object";
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') return NULL;
  for (;;) {
    p = skip_ws(p, end);
    const char *k = read_string(p, end, key, sizeof key);
    // A key too long for the buffer is none of ours: step over it.
    if (!k && (k = read_string(p, end, NULL, 0))) key[0] = 0;
    if (!k) return "the network configuration on stdin is not valid JSON (a key)";
    p = k;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return "the network configuration on stdin is not valid JSON (':' expected)";
    const char *value = skip_ws(p + 1, end);
    const char *after = skip_value(value, end, 0);
    if (!after) return "the network configuration on stdin is not valid JSON";
    if (!strcmp(key, "cniVersion")) {
      if (!read_string(value, end, c->cni_version, sizeof c->cni_version)) return "cniVersion must be a short string";
    } else if (!strcmp(key, "socket")) {
      if (!read_string(value, end, c->socket, sizeof c->socket)) return "socket must be a string of at most 107 bytes (a Unix socket path)";
    } else if (!strcmp(key, "timeout_seconds")) {
      char *stop;
      double s = strtod(value, &stop);
      if (stop != after || !(s > 0 && s <= 3600)) return "timeout_seconds must be a number of seconds between 0 and 3600";
      c->timeout_ms = (long)(s * 1000);
    } else if (!strcmp(key, "exclude_namespaces")) {
      const char *q = value;
      if (*q != '[') return "exclude_namespaces must be a list of namespace names";
      q = skip_ws(q + 1, end);
      if (*q != ']') {
        for (;;) {
          if (c->excluded_count == MAX_EXCLUDED) return "exclude_namespaces may name at most 64 namespaces";
          q = read_string(skip_ws(q, end), end, c->excluded[c->excluded_count], MAX_NAME);
          if (!q) return "exclude_namespaces must be a list of namespace names";
          c->excluded_count++;
          q = skip_ws(q, end);
          if (*q == ',') {
            q++;
            continue;
          }
          break;
        }
      }
    } else if (!strcmp(key, "prevResult")) {
      c->prev_result.p = value;
      c->prev_result.n = (size_t)(after - value);
    }
    p = skip_ws(after, end);
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == '}') return NULL;
    return "the network configuration on stdin is not valid JSON (',' or '}' expected)";
  }
}

// ---- I/O ---------------------------------------------------------------------------------------

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static char *read_stdin(size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= MAX_INPUT) return free(buf), NULL;
      cap *= 2;
      char *b = realloc(buf, cap + 1);
      if (!b) return free(buf), NULL;
      buf = b;
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return free(buf), NULL;
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

/** Waits for fd to be ready for `events` until `deadline`; 0 when ready, -1 on timeout or error. */
static int wait_fd(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return errno = ETIMEDOUT, -1;
    struct pollfd pfd = {.fd = fd, .events = events};
    int r = poll(&pfd, 1, (int)(left > 1000000 ? 1000000 : left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r > 0) return 0;
  }
}

static int send_all(int fd, const char *p, size_t n, long deadline) {
  while (n > 0) {
    if (wait_fd(fd, POLLOUT, deadline)) return -1;
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/**
 * Sends the request to the agent and reads its whole reply (NUL-terminated, in *reply). Returns
 * 0, or -1 with `why` saying what went wrong.
 */
static int ask_agent(const char *path, const char *input, size_t len, long timeout_ms, char **reply, char *why, size_t why_cap) {
  long deadline = now_ms() + timeout_ms;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return snprintf(why, why_cap, "socket: %s", strerror(errno)), -1;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return snprintf(why, why_cap, "cannot connect to %s: %s", path, strerror(err)), -1;
  }
  char header[8192];
  size_t h = (size_t)snprintf(header, sizeof header, "AMBIT-CNI 1\n");
  for (size_t i = 0; i < sizeof env_names / sizeof *env_names; i++) {
    const char *v = getenv(env_names[i]);
    if (!v) continue;
    if (strchr(v, '\n')) return close(fd), snprintf(why, why_cap, "%s holds a line break", env_names[i]), -1;
    int k = snprintf(header + h, sizeof header - h, "%s=%s\n", env_names[i], v);
    if (k < 0 || (size_t)k >= sizeof header - h) return close(fd), snprintf(why, why_cap, "the CNI environment is too long"), -1;
    h += (size_t)k;
  }
  header[h++] = '\n';
  if (send_all(fd, header, h, deadline) || send_all(fd, input, len, deadline)) {
    int err = errno;
    close(fd);
    return snprintf(why, why_cap, "sending to %s: %s", path, strerror(err)), -1;
  }
  shutdown(fd, SHUT_WR);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) return close(fd), snprintf(why, why_cap, "out of memory"), -1;
    if (n == cap) {
      if (cap >= MAX_REPLY) return free(buf), close(fd), snprintf(why, why_cap, "the agent's reply is too long"), -1;
      cap *= 2;
      char *b = realloc(buf, cap + 1);
      if (!b) free(buf);
      buf = b;
      continue;
    }
    if (wait_fd(fd, POLLIN, deadline)) {
      int err = errno;
      free(buf);
      close(fd);
      return snprintf(why, why_cap, "no answer from the agent at %s within %ld ms: %s", path, timeout_ms, strerror(err)), -1;
    }
    ssize_t r = recv(fd, buf + n, cap - n, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) {
      int err = errno;
      free(buf);
      close(fd);
      return snprintf(why, why_cap, "reading the agent's answer: %s", strerror(err)), -1;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *reply = buf;
  return 0;
}

// ---- the decision when the agent cannot be asked --------------------------------------------------

/** The value of KEY in CNI_ARGS ("K1=V1;K2=V2"), into out; empty if absent. */
static void cni_arg(const char *key, char *out, size_t cap) {
  const char *args = getenv("CNI_ARGS");
  size_t klen = strlen(key);
  out[0] = 0;
  for (const char *p = args; p && *p;) {
    const char *semi = strchr(p, ';');
    size_t n = semi ? (size_t)(semi - p) : strlen(p);
    if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
      size_t v = n - klen - 1;
      if (v >= cap) v = cap - 1;
      memcpy(out, p + klen + 1, v);
      out[v] = 0;
      return;
    }
    p = semi ? semi + 1 : p + n;
  }
}

/**
 * 1 if the namespace's pods must be captured, 0 if not, as far as the plugin can tell alone: the
 * agent's file of enrolled namespaces, beside its socket. No file means the agent has never said
 * (a node just booted, /var/run is empty): then every pod is held but those of excluded namespaces.
 */
static int must_capture(const struct config *c, const char *ns, const char **because) {
  for (int i = 0; i < c->excluded_count; i++)
    if (!strcmp(c->excluded[i], ns)) return *because = "", 0;
  char path[sizeof c->socket + 32];
  const char *slash = strrchr(c->socket, '/');
  int dir = slash ? (int)(slash - c->socket) : 1;
  snprintf(path, sizeof path, "%.*s/enrolled-namespaces", dir, slash ? c->socket : ".");
  FILE *f = fopen(path, "re");
  if (!f) return *because = "the agent has not listed the enrolled namespaces on this node yet", 1;
  char line[MAX_NAME + 2];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    found = !strcmp(line, ns);
  }
  fclose(f);
  *because = found ? "its namespace is enrolled in the mesh" : "";
  return found;
}

static void print_prev_result(const struct config *c) {
  fwrite(c->prev_result.p, 1, c->prev_result.n, stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *command = getenv("CNI_COMMAND");
  if (!command || !*command) fail(E_ENV, "CNI_COMMAND is not set: ambit-cni is a CNI plugin, run by the container runtime");
  if (!strcmp(command, "VERSION")) {
    printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[");
    for (size_t i = 0; i < sizeof supported / sizeof *supported; i++) printf("%s\"%s\"", i ? "," : "", supported[i]);
    printf("]}\n");
    return 0;
  }
  int del = !strcmp(command, "DEL");
  size_t len = 0;
  char *input = read_stdin(&len);
  if (!input) {
    if (del) return 0;
    fail(E_IO, "cannot read the network configuration from stdin (at most 1 MiB)");
  }
  static struct config c = {.socket = DEFAULT_SOCKET, .timeout_ms = DEFAULT_TIMEOUT_MS};
  const char *bad = parse_config(input, len, &c);
  if (c.cni_version[0]) reply_version = c.cni_version;
  if (del) {
    // DEL always succeeds: the agent hears of it if it is there, and forgets the pod.
    char *reply = NULL, why[512];
    if (!bad && !ask_agent(c.socket, input, len, c.timeout_ms < DEL_TIMEOUT_MS ? c.timeout_ms : DEL_TIMEOUT_MS, &reply, why, sizeof why)) free(reply);
    return 0;
  }
  if (bad) fail(E_DECODE, "%s", bad);
  int known = 0;
  for (size_t i = 0; i < sizeof supported / sizeof *supported; i++) known |= !strcmp(c.cni_version, supported[i]);
  if (!known) {
    reply_version = "1.0.0";
    fail(E_VERSION, "ambit-cni does not support cniVersion \"%s\" (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)", c.cni_version);
  }
  // CHECK: nothing of the pod's network is ambit's to check. STATUS (CNI 1.1) must not depend on
  // the agent: a failing STATUS marks the whole node's network not ready, and ADD already holds the
  // pods that need the agent. GC: the agent forgets pods by DEL and by their namespaces going away.
  if (!strcmp(command, "CHECK") || !strcmp(command, "STATUS") || !strcmp(command, "GC")) return 0;
  if (strcmp(command, "ADD")) fail(E_ENV, "unknown CNI_COMMAND \"%s\" (ambit-cni answers ADD, DEL, CHECK, STATUS, GC and VERSION)", command);
  if (!c.prev_result.p) fail(E_CONFIG, "ambit-cni is a chained plugin: it must come after the interface plugin in the conflist (no prevResult)");

  char *reply = NULL, why[1024];
  if (!ask_agent(c.socket, input, len, c.timeout_ms, &reply, why, sizeof why)) {
    char *nl = strchr(reply, '\n');
    char *stop;
    long status = nl ? strtol(reply, &stop, 10) : -1;
    if (nl && stop == nl && stop != reply && status >= 0 && status < 256) {
      const char *body = nl + 1;
      if (status == 0 && !*body) print_prev_result(&c);
      else fputs(body, stdout), fflush(stdout);
      return (int)status;
    }
    snprintf(why, sizeof why, "the agent at %s gave an answer ambit-cni cannot read", c.socket);
  }
  // No answer: fail closed for a pod that must be captured.
  char ns[MAX_NAME];
  const char *because;
  cni_arg("K8S_POD_NAMESPACE", ns, sizeof ns);
  if (must_capture(&c, ns, &because)) fail(E_TRY_LATER, "the pod must not start uncaptured (%s), and the ambit agent cannot be asked: %s", because, why);
  print_prev_result(&c);
  return 0;
}
