/* pkg.h - dfota-sim's delta package: format, builder, verifier and a
 * block-by-block, resumable applier; plus the deterministic firmware images
 * that stand in for real releases.
 *
 * A package is a header (magic, format version, source and target versions,
 * sizes and SHA-256 digests, the SHA-256 of the payload, a block table, a
 * header checksum) followed by the payload: the target image cut into
 * blocks of block_size bytes, each compressed as its own zstd frame with a
 * window of the source image as prefix. Because every block decodes on its
 * own, an interrupted update resumes at the first block not yet done, and
 * every block is checked on its own (XXH64 in the block table). The header
 * checksum covers the payload digest, so the two vouch for every byte of
 * the package: pkg_check_fd() and pkg_verify() check a whole package with
 * no source image. The byte layout (format 2) is described in
 * src/pkg/pkg_int.h.
 *
 * Two ways to read a package: whole in memory (pkg_open(), pkg_verify(),
 * pkg_applier_*()), or piece by piece from files (pkg_open_header() or
 * pkg_open_fd(), pkg_block_get(), pkg_decode_block(), pkg_check_fd()),
 * holding one frame, one prefix and one block at a time. Both run the same
 * checks. No function here keeps state outside the objects it is given:
 * different objects may be used on different threads at once.
 *
 * Errors are 0 or a negative errno. pkg_open() gives each corruption
 * class its own code:
 *   -ENODATA          truncated: shorter than the fixed header, the header
 *                     its header-size field gives, or the package's total
 *   -EBADMSG          bad magic: not one of our packages (an opaque vendor
 *                     package); from pkg_verify(), pkg_check_fd(),
 *                     pkg_apply_block(), pkg_decode_block(): a corrupt
 *                     frame, a block or payload digest mismatch
 *   -EPROTONOSUPPORT  unsupported format version
 *   -EILSEQ           header checksum mismatch
 *   -ENAMETOOLONG     a version string not NUL-terminated within
 *                     PKG_VERSION_MAX characters
 *   -ERANGE           a field or block table entry out of bounds: zero or
 *                     huge sizes, block size/count that do not fit the
 *                     target, a frame or prefix past its data, frames that
 *                     do not tile the payload, reserved bits set, a
 *                     non-printable or empty version
 *   -EMSGSIZE         bytes after the end of the package
 * The checks run in the order magic, format version, header length,
 * checksum, versions, sizes, file length, block table: a damaged byte
 * gets the first class it breaks (a flipped header bit anywhere but the magic,
 * format version or header-size field is -EILSEQ).
 * Others: -EINVAL bad argument, -ENOMEM, -ENOSPC output buffer too small,
 * -EXDEV source image is not the package's source, -EFBIG image too large,
 * -ENOENT an image that is not one of ours. pkg_strerror() gives a
 * one-line message for each.
 */
#ifndef DFOTA_PKG_H
#define DFOTA_PKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Longest firmware version string a package or an image holds. */
#define PKG_VERSION_MAX 63
/** Size of a generated image when none is asked for (4 MiB). */
#define PKG_IMAGE_DEFAULT_SIZE (4u << 20)
/** Smallest image pkg_image_generate() makes. */
#define PKG_IMAGE_MIN_SIZE 4096u
/** Largest source or target image a package may describe (256 MiB). */
#define PKG_IMAGE_MAX_SIZE (256u << 20)
/** Block size pkg_build() cuts the target into (64 KiB). */
#define PKG_BLOCK_SIZE 65536u
/** Smallest and largest block size a package may declare. */
#define PKG_BLOCK_SIZE_MIN 4096u
#define PKG_BLOCK_SIZE_MAX (4u << 20)
/** Largest window (prefix + block) a frame may use, as log2 (128 MiB). */
#define PKG_WINDOW_LOG_MAX 27
/** Largest package file pkg_file_read() loads for the tools (1 GiB). */
#define PKG_FILE_MAX (1u << 30)

/* ---- SHA-256 (OpenSSL libcrypto EVP: the CPU's SHA extensions) ------ */

/** A running SHA-256; wraps an EVP_MD_CTX. One thread at a time. */
struct pkg_sha256;

/** Starts a SHA-256 in *@p out; free it with pkg_sha256_free().
 *  Errors: -ENOMEM, -EIO (libcrypto refused), -EINVAL. */
int pkg_sha256_new(struct pkg_sha256 **out);

/** Adds @p len bytes at @p buf (borrowed for the call) to @p h.
 *  Errors: -EIO, -EINVAL. */
int pkg_sha256_update(struct pkg_sha256 *h, const void *buf, size_t len);

/** Writes the digest of everything added to @p h into @p out. After it
 *  @p h may only be freed. Errors: -EIO, -EINVAL. */
int pkg_sha256_final(struct pkg_sha256 *h, uint8_t out[32]);

/** Frees @p h (NULL is fine). */
void pkg_sha256_free(struct pkg_sha256 *h);

/** SHA-256 of @p len bytes at @p buf into @p out. Returns 0, -EIO or
 *  -EINVAL. */
int pkg_sha256(const void *buf, size_t len, uint8_t out[32]);

/** SHA-256 of the first @p len bytes of @p fd, read with pread() in 1 MiB
 *  chunks from offset 0 (the file offset is not moved). Thread-safe.
 *  Errors: -EIO the file is shorter than @p len (or libcrypto failed),
 *  -errno of pread(), -ENOMEM. */
int pkg_sha256_fd(int fd, uint64_t len, uint8_t out[32]);

/** A one-line message for a negative errno returned by this module
 *  (falls back to the system's text for other codes). Static storage. */
const char *pkg_strerror(int err);

/* ---- firmware images ------------------------------------------------ */

/** Generates the deterministic firmware image of @p version: @p size bytes
 *  (0 selects PKG_IMAGE_DEFAULT_SIZE) of code-like content with the version
 *  embedded near the start. Images of two versions share most code and
 *  differ the way releases do (functions changed, inserted, removed, code
 *  shifted). On success *@p out is malloc'd and the caller frees it.
 *  Errors: -EINVAL bad version string or size below PKG_IMAGE_MIN_SIZE,
 *  -ENAMETOOLONG version longer than PKG_VERSION_MAX, -EFBIG size above
 *  PKG_IMAGE_MAX_SIZE, -ENOMEM. */
int pkg_image_generate(const char *version, size_t size, uint8_t **out, size_t *out_len);

/** Reads back the version embedded in an image made by
 *  pkg_image_generate() into @p out (NUL-terminated, @p cap bytes).
 *  Errors: -ENOENT not one of our images, -ENOSPC @p cap too small. */
int pkg_image_version(const uint8_t *img, size_t len, char *out, size_t cap);

/* ---- building ------------------------------------------------------- */

/** Builds the package that turns @p src (version @p src_version) into
 *  @p dst (version @p dst_version). Deterministic: the same inputs give the
 *  same bytes. On success *@p out is malloc'd and the caller frees it.
 *  Errors: -EINVAL empty image or bad version string, -ENAMETOOLONG
 *  version longer than PKG_VERSION_MAX, -EFBIG image above
 *  PKG_IMAGE_MAX_SIZE, -ENOMEM, -EIO compressor failure. */
int pkg_build(const uint8_t *src, size_t src_len, const char *src_version, const uint8_t *dst,
              size_t dst_len, const char *dst_version, uint8_t **out, size_t *out_len);

/* ---- reading -------------------------------------------------------- */

/** A parsed package whose header passed every check. */
struct pkg;

/** What a package's header says. */
struct pkg_info {
    unsigned format_version;
    char src_version[PKG_VERSION_MAX + 1];
    char dst_version[PKG_VERSION_MAX + 1];
    uint8_t src_sha256[32];
    uint8_t dst_sha256[32];
    uint64_t src_size;
    uint64_t dst_size;
    uint32_t block_size;
    uint32_t block_count;
    uint64_t header_size; /**< bytes before the first frame */
    uint64_t total_size;  /**< header and every frame: the file's length */
    uint8_t payload_sha256[32]; /**< SHA-256 of every byte after the header */
};

/** Whether @p buf starts with our package magic; when false the file is an
 *  opaque (vendor) package. Reads at most the first 8 bytes. */
bool pkg_is_ours(const uint8_t *buf, size_t len);

/** Parses and checks the header and block table of the package in @p buf
 *  (exactly @p len bytes; never reads past them). The package borrows
 *  @p buf, which must outlive it; free it with pkg_free(). Errors: the
 *  corruption classes listed at the top of this file, -EINVAL, -ENOMEM. */
int pkg_open(const uint8_t *buf, size_t len, struct pkg **out);

/** The header of @p p; valid as long as @p p. */
const struct pkg_info *pkg_get_info(const struct pkg *p);

/** Frees @p p (NULL is fine); the buffer it borrowed is untouched. */
void pkg_free(struct pkg *p);

/** Checks frame @p index of @p p (opened with pkg_open()) as far as
 *  possible without the source image: a single zstd frame of exactly its
 *  table length that decodes (against a zeroed prefix) to exactly the
 *  block's size. Returns 0, -EBADMSG for a corrupt frame, -EINVAL for an
 *  index out of range or a package opened without its frames, -ENOMEM. */
int pkg_verify_block(const struct pkg *p, uint32_t index);

/** pkg_verify_block() for every block, then the payload digest: 0 when the
 *  package opened with pkg_open() is intact, else the first error
 *  (-EBADMSG for a corrupt frame or a payload digest mismatch). */
int pkg_verify(const struct pkg *p);

/* ---- reading piece by piece (files, pread, worker threads) ----------- */

/** Bytes of a package needed before pkg_header_size() can answer. */
#define PKG_FIXED_HEADER_SIZE 272u

/** From the first @p len bytes of a package (PKG_FIXED_HEADER_SIZE are
 *  enough), how many bytes its whole header (fixed part, block table,
 *  checksum) takes, into *@p need. Errors, the pkg_open() classes these
 *  bytes decide: -EBADMSG not ours, -EPROTONOSUPPORT, -ENODATA fewer bytes
 *  than needed to tell, -ERANGE header size out of bounds; -EINVAL. */
int pkg_header_size(const uint8_t *buf, size_t len, size_t *need);

/** Parses and checks the header and block table in @p hdr (@p hdr_len
 *  bytes, at least the header size) of a package file of @p file_len
 *  bytes: every check of pkg_open() that needs no frame byte (-ENODATA /
 *  -EMSGSIZE from @p file_len too). @p hdr is not borrowed. The package
 *  works with pkg_get_info(), pkg_block_get(), pkg_decode_block() and
 *  pkg_free(); pkg_verify*() and pkg_applier_new() answer -EINVAL (they
 *  need the frames in memory). Errors: those of pkg_open(); -ENODATA when
 *  @p hdr_len is below the header size. */
int pkg_open_header(const uint8_t *hdr, size_t hdr_len, uint64_t file_len, struct pkg **out);

/** pkg_open_header() of the package file @p fd of @p file_len bytes: reads
 *  its header with pread() (the file offset is not moved). Thread-safe.
 *  Errors: those of pkg_open_header(), -ENODATA the file ends early,
 *  -errno of pread(), -ENOMEM. */
int pkg_open_fd(int fd, uint64_t file_len, struct pkg **out);

/** Where block @p i of a package lies: its frame in the package file, its
 *  prefix in the source image, its bytes in the target image. */
struct pkg_block {
    uint64_t frame_off;  /**< from the start of the package file */
    uint32_t frame_len;
    uint64_t prefix_off; /**< into the source image */
    uint32_t prefix_len;
    uint64_t dst_off;    /**< into the target image */
    uint32_t dst_len;
};

/** Fills @p b with block @p i of @p p. Errors: -EINVAL @p i out of range
 *  (i >= block_count) or a NULL argument. */
int pkg_block_get(const struct pkg *p, uint32_t i, struct pkg_block *b);

/** A zstd decoding context (ZSTD_DCtx): one thread at a time uses one,
 *  for any number of packages. */
struct pkg_decoder;

/** A new decoder in *@p out; free it with pkg_decoder_free().
 *  Errors: -ENOMEM, -EINVAL. */
int pkg_decoder_new(struct pkg_decoder **out);

/** Frees @p d (NULL is fine). */
void pkg_decoder_free(struct pkg_decoder *d);

/** Decodes block @p i of @p p from @p frame (its frame_len bytes as read
 *  from the package file) against @p prefix (its prefix_len bytes of the
 *  source image from prefix_off; may be NULL when prefix_len is 0) into
 *  @p dst (@p cap bytes, at least dst_len), sets *@p dst_len and checks the
 *  block's digest. Every buffer is borrowed for the call only. Errors:
 *  -EBADMSG corrupt frame or digest mismatch, -EINVAL index out of range
 *  or a NULL argument, -ENOSPC @p cap below the block's size. */
int pkg_decode_block(struct pkg_decoder *d, const struct pkg *p, uint32_t i,
                     const uint8_t *frame, const uint8_t *prefix, uint8_t *dst, size_t cap,
                     size_t *dst_len);

/** Checks the package file @p fd of @p file_len bytes with no source
 *  image, reading it with pread() a frame at a time (never whole, the file
 *  offset is not moved): the header and block table as pkg_open_header(),
 *  every frame as pkg_verify_block(), and the payload digest. 0 when the
 *  package is intact: any flipped, missing or extra byte fails. Else the
 *  corruption class of pkg_open() (-EBADMSG also for a corrupt frame or a
 *  payload digest mismatch), -ENODATA the file ends before @p file_len,
 *  -errno of pread(), -ENOMEM. Fills *@p info (when not NULL) once the
 *  header parsed, even when a frame then fails; else leaves it zeroed.
 *  Thread-safe. */
int pkg_check_fd(int fd, uint64_t file_len, struct pkg_info *info);

/* ---- applying ------------------------------------------------------- */

/** Decodes the blocks of one package against one source image. */
struct pkg_applier;

/** An applier of @p p against @p src. Both are borrowed and must outlive
 *  it; free it with pkg_applier_free(). Errors: -EXDEV when @p src_len or
 *  the SHA-256 of @p src differs from the package's source, -EINVAL,
 *  -ENOMEM. */
int pkg_applier_new(const struct pkg *p, const uint8_t *src, size_t src_len,
                    struct pkg_applier **out);

/** Decodes block @p index of the target into @p dst (block_size bytes, less
 *  for the last block), sets *@p dst_len, and checks the block's digest.
 *  Blocks may be applied in any order, any number of times, so an
 *  interrupted update can resume at any block. Errors: -EBADMSG corrupt
 *  frame or digest mismatch, -EINVAL index out of range, -ENOSPC @p dst_cap
 *  below the block's size. */
int pkg_apply_block(struct pkg_applier *a, uint32_t index, uint8_t *dst, size_t dst_cap,
                    size_t *dst_len);

/** Frees @p a (NULL is fine). */
void pkg_applier_free(struct pkg_applier *a);

/** Applies every block of @p p to @p src and checks the result against the
 *  target's SHA-256. On success *@p out (malloc'd, dst_size bytes) belongs
 *  to the caller. Errors: those of pkg_applier_new() and pkg_apply_block(),
 *  -EBADMSG when the whole target's digest does not match. */
int pkg_apply_all(const struct pkg *p, const uint8_t *src, size_t src_len, uint8_t **out,
                  size_t *out_len);

/* ---- files and the dfota-pack commands ------------------------------ */

/** Reads the file @p path (at most @p max bytes) into a malloc'd buffer the
 *  caller frees. Errors: -errno of open/read, -EFBIG larger than @p max. */
int pkg_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len);

/** Writes @p len bytes to @p path crash-safe: a temporary file beside it,
 *  fsync, rename over @p path, fsync of the directory. Returns 0 or -errno;
 *  on error @p path is untouched and no temporary file is left. */
int pkg_file_write(const char *path, const void *buf, size_t len);

/** Writes @p info to @p f, human-readable or as one JSON object.
 *  Returns 0 or -EIO. */
int pkg_info_print(const struct pkg_info *info, bool json, FILE *f);

/** Where a dfota-pack command takes an image from: generated from
 *  @p version, or read from @p path (whose version is @p version when set,
 *  else the one embedded in the image). */
struct pkg_image_src {
    const char *version; /**< may be NULL when path is set */
    const char *path;    /**< NULL: generate from version */
    size_t size;         /**< generated image size, 0 for the default */
};

/** Loads the image @p s describes into a malloc'd buffer the caller frees
 *  and its version into @p version. On error writes a one-line reason to
 *  @p msg (@p cap bytes). Errors: those of pkg_file_read() and
 *  pkg_image_generate(), -ENOENT no version given for a foreign image. */
int pkg_image_load(const struct pkg_image_src *s, uint8_t **img, size_t *len,
                   char version[PKG_VERSION_MAX + 1], char *msg, size_t cap);

/** `dfota-pack image`: writes the image of @p version (@p size, 0 default)
 *  to @p path crash-safe. On error writes a one-line reason to @p msg. */
int pkg_cmd_image(const char *version, size_t size, const char *path, char *msg, size_t cap);

/** `dfota-pack build`: builds the package from @p from to @p to and writes
 *  it to @p path crash-safe. On error writes a one-line reason to @p msg. */
int pkg_cmd_build(const struct pkg_image_src *from, const struct pkg_image_src *to,
                  const char *path, char *msg, size_t cap);

/** `dfota-pack info`: prints the header of the package file @p path to
 *  @p f. On error writes a one-line reason to @p msg. */
int pkg_cmd_info(const char *path, bool json, FILE *f, char *msg, size_t cap);

/** `dfota-pack verify`: checks the package file @p path as pkg_check_fd()
 *  does (every byte, no source image); when @p from is not NULL also
 *  applies it to that image and checks the target digest. Prints "OK" to
 *  @p f on success; on error writes a one-line reason to @p msg. */
int pkg_cmd_verify(const char *path, const struct pkg_image_src *from, FILE *f, char *msg,
                   size_t cap);

#endif
