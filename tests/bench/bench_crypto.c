/* bench_crypto.c -- ECDSA P-256 verifications per second on one core, with
 * nettle (what Debian's libunbound validates with) and with OpenSSL (what
 * Debian's unbound daemon validates with).  A cache miss of a signed zone
 * costs one or two of these, so this bounds miss throughput (make bench's
 * miss rows).
 *
 * usage: bench_crypto [seconds per library, default 3] */
#include <nettle/ecc-curve.h>
#include <nettle/ecdsa.h>
#include <nettle/yarrow.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Verifications per second, or -1 if a verification failed. */
static double nettle_rate(double seconds)
{
	struct yarrow256_ctx rnd;
	const uint8_t seed[32] = { 1 };
	yarrow256_init(&rnd, 0, NULL);
	yarrow256_seed(&rnd, sizeof seed, seed);
	struct ecc_point pub;
	struct ecc_scalar key;
	ecc_point_init(&pub, nettle_get_secp_256r1());
	ecc_scalar_init(&key, nettle_get_secp_256r1());
	ecdsa_generate_keypair(&pub, &key, &rnd, (nettle_random_func *)yarrow256_random);
	uint8_t digest[32];
	memset(digest, 0x5a, sizeof digest);
	struct dsa_signature sig;
	dsa_signature_init(&sig);
	ecdsa_sign(&key, &rnd, (nettle_random_func *)yarrow256_random, sizeof digest, digest, &sig);

	long n = 0, good = 0;
	double t0 = now_s(), t;
	do {
		for (int i = 0; i < 100; i++)
			good += ecdsa_verify(&pub, sizeof digest, digest, &sig);
		n += 100;
		t = now_s();
	} while (t - t0 < seconds);
	dsa_signature_clear(&sig);
	ecc_scalar_clear(&key);
	ecc_point_clear(&pub);
	return good == n ? (double)n / (t - t0) : -1;
}

static double openssl_rate(double seconds)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	if (pkey == NULL)
		return -1;
	uint8_t digest[32], sig[128];
	memset(digest, 0x5a, sizeof digest);
	size_t siglen = sizeof sig;
	EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(pkey, NULL);
	EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new(pkey, NULL);
	double rate = -1;
	if (sctx == NULL || vctx == NULL || EVP_PKEY_sign_init(sctx) <= 0 ||
	    EVP_PKEY_sign(sctx, sig, &siglen, digest, sizeof digest) <= 0 || EVP_PKEY_verify_init(vctx) <= 0)
		goto out;
	long n = 0, good = 0;
	double t0 = now_s(), t;
	do {
		for (int i = 0; i < 100; i++)
			good += EVP_PKEY_verify(vctx, sig, siglen, digest, sizeof digest) == 1;
		n += 100;
		t = now_s();
	} while (t - t0 < seconds);
	if (good == n)
		rate = (double)n / (t - t0);
out:
	EVP_PKEY_CTX_free(sctx);
	EVP_PKEY_CTX_free(vctx);
	EVP_PKEY_free(pkey);
	return rate;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	if (seconds <= 0) {
		fprintf(stderr, "usage: bench_crypto [seconds]\n");
		return 2;
	}
	double n = nettle_rate(seconds), o = openssl_rate(seconds);
	if (n < 0 || o < 0) {
		fprintf(stderr, "bench_crypto: a verification failed\n");
		return 1;
	}
	printf("ECDSA P-256 verify, one core: nettle %.0f/s (libunbound), OpenSSL %.0f/s (unbound): %.2fx\n", n, o,
	       o / n);
	return 0;
}
