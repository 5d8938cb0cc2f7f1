/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial value and final
 * xor 0xFFFFFFFF): the checksum model.bin uses for its header and sections. */
#ifndef MTR_CRC32_H
#define MTR_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC-32 over len bytes. Start with crc = 0; the result of one call
 * is the crc argument of the next, so crc32(ab) == mtr_crc32_update(
 * mtr_crc32_update(0, a), b). The CRC of "123456789" is 0xCBF43926. */
uint32_t mtr_crc32_update(uint32_t crc, const void *data, size_t len);

/* The CRC-32 of one buffer: mtr_crc32_update(0, data, len). */
uint32_t mtr_crc32(const void *data, size_t len);

#endif
