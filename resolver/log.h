/* log.h -- leveled logging to stderr, safe from any thread. */
#ifndef MXR_LOG_H
#define MXR_LOG_H

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Set the most verbose level that is printed (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);

/* Print one line "mxresolved[level]: message" to stderr if level is enabled.
 * Lines from different threads never interleave. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
