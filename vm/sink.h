/* Console back-ends for --serial and --console: where a console device's
 * output goes and where its input comes from.
 *   off, null  output dropped, no input (off: the caller creates no device)
 *   tty        stdout; input from stdin, which is put in raw mode when it is
 *              a terminal and restored at sink_close() or exit
 *   file=PATH  output appended to PATH, no input
 *   socket=PATH a unix stream socket listening at PATH, one client at a
 *              time: output to it, input from it; while no client is
 *              connected, or while it is slow, the newest SINK_RING_SIZE
 *              bytes wait in a ring (older ones are dropped), so a late
 *              client sees recent history.
 *   callback   (sink_open_callback, for the worker) output handed to a
 *              function, synchronously; no input (the owner feeds the
 *              device itself).
 * sink_write() never blocks on a reader: tty and socket output is handed to
 * the sink's own thread, which also reads input and calls the input callback.
 * Everything here is thread-safe. */
#ifndef CHV_VM_SINK_H
#define CHV_VM_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "vm/config.h"
#include "vm/devctx.h"
#include "vm/err.h"

#define SINK_RING_SIZE (64 * 1024)

struct sink;

/* Called on the sink's thread with bytes the user typed. */
typedef void (*sink_input_fn)(void *ctx, const uint8_t *buf, size_t n);

/* Opens the back-end for cc; messages name "--serial". NULL with err set
 * (naming the option, the mode and the path) on failure. */
struct sink *sink_open(const struct console_config *cc, struct chv_err *err);
/* The same, with messages naming opt ("--serial", "--console"). Only one
 * tty sink may be open at a time (-EBUSY). */
struct sink *sink_open_opt(const struct console_config *cc, const char *opt, struct chv_err *err);

/* Called with the console's output, in order, on the writing thread (a
 * vCPU) and under the sink's lock: it must not block or call into the sink. */
typedef void (*sink_output_fn)(void *ctx, const uint8_t *buf, size_t n);

/* A sink whose output goes to fn (not NULL). NULL with errno ENOMEM/EINVAL. */
struct sink *sink_open_callback(sink_output_fn fn, void *ctx);

/* Sets (fn NULL: clears) the input callback. Input that arrives while none is
 * set stays unread in the kernel. */
void sink_set_input(struct sink *s, sink_input_fn fn, void *ctx);

/* Queues or writes output; NULL-safe. Never waits for a tty or socket reader. */
void sink_write(struct sink *s, const uint8_t *buf, size_t n);

/* An out_sink writing to s, for a console device. */
struct out_sink sink_out(struct sink *s);

/* Bytes lost so far: dropped from the ring, or refused by the file. */
uint64_t sink_dropped(struct sink *s);
/* Bytes written to the sink so far (by sink_write), dropped ones included. */
uint64_t sink_tx_bytes(struct sink *s);

/* Flushes what it can within half a second, stops the thread, closes the
 * client, removes the socket file it created, restores the tty. NULL-safe. */
void sink_close(struct sink *s);

/* Restores the terminal settings of stdin if a tty sink changed them;
 * async-signal-safe, for a fatal signal handler. Also runs at exit. */
void sink_tty_restore(void);

#endif
