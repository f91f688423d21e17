/* at_codes.h - V.250 result codes (ATV0); the +CME ERROR table is in dfota/at.h. */
#ifndef DFOTA_AT_CODES_H
#define DFOTA_AT_CODES_H

/* V.250 numeric result codes (ATV0) */
#define AT_RC_OK 0
#define AT_RC_CONNECT 1
#define AT_RC_ERROR 4

#endif
