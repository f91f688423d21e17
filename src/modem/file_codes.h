/* file_codes.h - the numbers of Quectel's FILE AT commands (AT+QFUPL,
 * AT+QFLST, AT+QFDEL, AT+QFLDS), each written once. */
#ifndef DFOTA_FILE_CODES_H
#define DFOTA_FILE_CODES_H

/* +CME ERROR codes of the FILE AT commands manual, X(code, name, meaning).
 * The module prints them as numbers, also with AT+CMEE=2. */
#define MODEM_FILE_ERR_MAP(X)                                                                      \
    X(400, INVALID_INPUT, "Invalid input value")                                                   \
    X(401, BEYOND_FILE, "Larger than the size of the file")                                        \
    X(402, READ_ZERO, "Read zero byte size")                                                       \
    X(403, DRIVE_FULL, "Drive full")                                                               \
    X(405, NOT_FOUND, "File not found")                                                            \
    X(406, BAD_NAME, "Invalid file name")                                                          \
    X(407, EXISTS, "File already existed")                                                         \
    X(409, WRITE, "Fail to write the file")                                                        \
    X(410, OPEN, "Fail to open the file")                                                          \
    X(411, READ, "Fail to read the file")                                                          \
    X(413, TOO_MANY_OPEN, "Reach the max number of file allowed to be opened")                     \
    X(414, READ_ONLY, "The file read-only")                                                        \
    X(416, BAD_FD, "Invalid file descriptor")                                                      \
    X(417, LIST, "Fail to list the file")                                                          \
    X(418, DELETE, "Fail to delete the file")                                                      \
    X(419, DISK_INFO, "Fail to get disk info")                                                     \
    X(420, NO_SPACE, "No space")                                                                   \
    X(421, TIMEOUT, "Time out")                                                                    \
    X(423, TOO_LARGE, "File too large")                                                            \
    X(425, BAD_PARAM, "Invalid parameter")                                                         \
    X(426, ALREADY_OPEN, "File already opened")

enum modem_file_err {
#define X(code, name, text) FILE_ERR_##name = code,
    MODEM_FILE_ERR_MAP(X)
#undef X
};

/* The other numbers of the FILE commands. */
#define FILE_UPL_SIZE_DEFAULT 10240 /* AT+QFUPL <file_size>, bytes */
#define FILE_UPL_TIMEOUT_DEFAULT 5  /* AT+QFUPL <timeout>, s */
#define FILE_UPL_TIMEOUT_MAX 65535  /* AT+QFUPL=? (1-65535) */
#define FILE_UPL_ACK_BLOCK 1024     /* <ackmode> 1: an 'A' after each block of this many bytes */
#define FILE_UPL_ACK_CHAR 'A'

/* "+QFUPL: <upload_size>,<checksum>" and "+QFOTADL: <upload_size>,<check_sum>":
 * the checksum in lower-case hex without prefix, as the modules print it. */
#define MODEM_UPLOAD_REPORT_FMT "%s: %llu,%x"

#endif
