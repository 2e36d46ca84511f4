/* web_assets.h -- the dashboard's files, compiled into the binary by
 * web/embed-assets (the generated web_assets.c defines the table), so the
 * daemon serves them with no files to install and no CDN. */
#ifndef MXR_WEB_ASSETS_H
#define MXR_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path;               /* URL path: "/" for index.html, else "/assets/<basename>" */
	const char *content_type;       /* by extension, with charset for text */
	const unsigned char *data;      /* the file's bytes, static */
	size_t len;
	const char *etag;               /* strong ETag with its quotes: "\"<hex of SHA-256>\"" */
};

extern const struct web_asset web_assets[];
extern const size_t web_asset_count;

#endif
