/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()). Called at CPL3: the
 * table build and the byte loop are far too slow for emulated CPL0. */
#include "guest.h"

static uint32_t table[256];

uint32_t crc32_ieee(const uint8_t *p, uint64_t n)
{
	uint32_t c = 0xffffffffu;

	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;
			for (int k = 0; k < 8; k++)
				v = (v & 1) ? (v >> 1) ^ 0xedb88320u : v >> 1;
			table[i] = v;
		}
	while (n--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}
