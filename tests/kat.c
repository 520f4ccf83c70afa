/*
 * Known-answer tests: recompute a vector file from its inputs with
 * secchat's own functions and print it in the same "name = value" form,
 * so that test.sh can diff the output against the file.
 *
 *	kat pbkdf2 FILE		RFC 7914 section 11 (PBKDF2-HMAC-SHA256)
 *	kat spake2 FILE		RFC 9382 Appendix B (SPAKE2-P256)
 *	kat handshake3 FILE	a secchat/3 session's handshake (its first block)
 *	kat refusals3 FILE	secchat/3 REFUSALs, their lines, CODE and NO_NEW
 *	kat serving FILE	penalties and log limits of secchat.1 SERVING MANY
 *
 * Cross-checks that have no line in the file (both SPAKE2 parties agree,
 * every record opens, a forged record does not) print "FAIL: ..." lines,
 * which the diff then shows, and make the exit status non-zero.
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"

#define MAX_FIELDS	256
#define MAX_VALUE	1024

struct field {
	char	name[64];
	char	value[MAX_VALUE];
};

struct block {
	struct field f[MAX_FIELDS];
	int	n;
};

static int failures;

static void
fail(const char *what)
{
	printf("FAIL: %s\n", what);
	failures++;
}

/* Read the next block of "name = value" lines; 0 at end of file. */
static int
read_block(FILE *fp, struct block *b)
{
	char line[4096], *eq;
	size_t len;

	b->n = 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		len = strcspn(line, "\r\n");
		line[len] = '\0';
		if (line[0] == '#')
			continue;
		if (len == 0) {
			if (b->n > 0)
				return 1;
			continue;
		}
		if ((eq = strstr(line, " = ")) == NULL || b->n == MAX_FIELDS)
			errx(1, "bad vector line: %s", line);
		*eq = '\0';
		snprintf(b->f[b->n].name, sizeof(b->f[b->n].name), "%.63s",
		    line);
		snprintf(b->f[b->n].value, sizeof(b->f[b->n].value), "%.1023s",
		    eq + 3);
		b->n++;
	}
	return b->n > 0;
}

static const char *
get(const struct block *b, const char *name)
{
	int i;

	for (i = 0; i < b->n; i++)
		if (strcmp(b->f[i].name, name) == 0)
			return b->f[i].value;
	errx(1, "vector has no %s", name);
}

static size_t
unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2, i;
	unsigned int v;

	if (strlen(hex) % 2 != 0 || n > cap)
		errx(1, "bad hex: %s", hex);
	for (i = 0; i < n; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			errx(1, "bad hex: %s", hex);
		out[i] = v;
	}
	return n;
}

static void
print_hex(const char *name, const uint8_t *p, size_t n)
{
	char buf[2 * 4096 + 1];

	if (n > 4096)
		abort();
	*hex_encode(buf, p, n) = '\0';
	printf("%s = %s\n", name, buf);
}

static BIGNUM *
scalar_hex(const struct block *b, const char *name)
{
	uint8_t s[SCALAR_LEN];

	if (unhex(get(b, name), s, sizeof(s)) != SCALAR_LEN)
		errx(1, "%s is not 32 bytes", name);
	return scalar_from_bytes(s, sizeof(s));
}

static void
kat_pbkdf2(FILE *fp)
{
	struct block b;
	uint8_t dk[256];
	const char *pass, *salt;
	int first = 1, iter, len;

	while (read_block(fp, &b)) {
		pass = get(&b, "password");
		salt = get(&b, "salt");
		iter = atoi(get(&b, "iterations"));
		len = atoi(get(&b, "length"));
		if (len <= 0 || len > (int)sizeof(dk))
			errx(1, "bad length");
		pbkdf2_sha256(pass, strlen(pass), (const uint8_t *)salt,
		    strlen(salt), iter, dk, len);
		printf("%spassword = %s\nsalt = %s\niterations = %d\n"
		    "length = %d\n", first ? "" : "\n", pass, salt, iter, len);
		print_hex("dk", dk, len);
		first = 0;
	}
}

/* Both parties of one exchange, as the connector (A) and listener (B). */
static void
exchange(const struct pake *pk, const BIGNUM *x, const BIGNUM *y,
    const uint8_t *aad, size_t aad_len, const char *id_a, const char *id_b,
    uint8_t pA[POINT_LEN], uint8_t pB[POINT_LEN], struct handshake_keys *a)
{
	struct handshake_keys b;

	memset(a, 0, sizeof(*a));
	memset(&b, 0, sizeof(b));
	spake2_share(pk, 1, x, pA);
	spake2_share(pk, 0, y, pB);
	if (spake2_key(pk, 1, x, pB, a->K) || spake2_key(pk, 0, y, pA, b.K))
		fail("spake2_key refused a valid exchange");
	spake2_transcript(a, id_a, id_b, pA, pB, pk->w_bytes);
	spake2_transcript(&b, id_a, id_b, pA, pB, pk->w_bytes);
	spake2_confirm(a, aad, aad_len);
	spake2_confirm(&b, aad, aad_len);
	if (memcmp(a, &b, sizeof(b)) != 0)
		fail("A and B derived different keys");
}

static void
kat_spake2(FILE *fp)
{
	struct block b;
	struct pake pk;
	struct handshake_keys hk;
	uint8_t w[SCALAR_LEN], pA[POINT_LEN], pB[POINT_LEN];
	BIGNUM *x, *y;
	int first = 1;

	while (read_block(fp, &b)) {
		unhex(get(&b, "w"), w, sizeof(w));
		pake_init(&pk, w);
		x = scalar_hex(&b, "x");
		y = scalar_hex(&b, "y");
		exchange(&pk, x, y, NULL, 0, get(&b, "idA"), get(&b, "idB"),
		    pA, pB, &hk);
		printf("%sidA = %s\nidB = %s\nw = %s\nx = %s\ny = %s\n",
		    first ? "" : "\n", get(&b, "idA"), get(&b, "idB"),
		    get(&b, "w"), get(&b, "x"), get(&b, "y"));
		print_hex("pA", pA, POINT_LEN);
		print_hex("pB", pB, POINT_LEN);
		print_hex("Ke", hk.Ke, HALF_LEN);
		print_hex("Ka", hk.Ka, HALF_LEN);
		print_hex("KcA", hk.KcA, HALF_LEN);
		print_hex("KcB", hk.KcB, HALF_LEN);
		print_hex("cA", hk.cA, MAC_LEN);
		print_hex("cB", hk.cB, MAC_LEN);
		BN_free(x);
		BN_free(y);
		pake_free(&pk);
		first = 0;
	}
}

static void
print_direction_keys(const char *name, const struct direction *d)
{
	uint8_t key[KEY_LEN], iv[IV_LEN];
	char label[32];

	derive_key_iv(d->secret, key, iv);
	snprintf(label, sizeof(label), "%s.key", name);
	print_hex(label, key, sizeof(key));
	snprintf(label, sizeof(label), "%s.iv", name);
	print_hex(label, iv, sizeof(iv));
}

static const char *type_names[] = {
	"?", "DATA", "REKEY", "CLOSE", "KEY", "DONE",
};

/* The key pair of a given private key (the vector's fixed keys). */
static EVP_PKEY *
x25519_from_private(const uint8_t priv[X25519_LEN], uint8_t pub[X25519_LEN])
{
	EVP_PKEY *key;

	if ((key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
	    X25519_LEN)) == NULL)
		crypto_fail("EVP_PKEY_new_raw_private_key");
	x25519_public(key, pub);
	return key;
}

/* One side of the vector's connection: its receive keys, the peer's. */
struct side {
	struct recv_keys rk;
	struct peer_keys pk;
};

/* One direction: the sender's and the receiver's cipher state. */
struct dir {
	const char *name;
	struct direction send, recv;
	struct side *from, *to;
};

/* The 32-byte input NAME.FIELD of record NAME. */
static void
input32(const struct block *b, const char *name, const char *field,
    uint8_t out[X25519_LEN])
{
	char label[64];

	snprintf(label, sizeof(label), "%s.%s", name, field);
	if (unhex(get(b, label), out, X25519_LEN) != X25519_LEN)
		errx(1, "%s is not 32 bytes", label);
	print_hex(label, out, X25519_LEN);
}

static void
print_field(const char *name, const char *field, const uint8_t *p, size_t n)
{
	char label[64];

	snprintf(label, sizeof(label), "%s.%s", name, field);
	if (n == 0)
		printf("%s = -\n", label);
	else
		print_hex(label, p, n);
}

/*
 * The payload of a KEY or REKEY record, made with secchat's own receive
 * key functions from the vector's fixed private keys.
 */
static size_t
key_payload(const struct block *b, const char *name, struct dir *d,
    uint8_t *payload)
{
	uint8_t priv[X25519_LEN];

	input32(b, name, "private", priv);
	recv_keys_add(&d->from->rk, x25519_from_private(priv, payload));
	OPENSSL_cleanse(priv, sizeof(priv));
	return X25519_LEN;
}

static size_t
rekey_payload_kat(const struct block *b, const char *name, struct dir *d,
    uint8_t *payload, uint8_t dh[X25519_LEN])
{
	uint8_t priv[X25519_LEN], pub[X25519_LEN];

	input32(b, name, "ephemeral", priv);
	if (rekey_payload(&d->from->pk, x25519_from_private(priv, pub),
	    payload, dh) == -1)
		fail("a REKEY's DH is all zero");
	OPENSSL_cleanse(priv, sizeof(priv));
	return REKEY_LEN;
}

/* The receiver's side of a KEY or REKEY that opened to payload. */
static void
receive_control(struct dir *d, int type, const uint8_t *payload,
    const uint8_t dh[X25519_LEN])
{
	uint8_t got[X25519_LEN];
	uint32_t index;

	if (type == TYPE_KEY && peer_keys_add(&d->to->pk, payload) == -1)
		fail("a KEY came before the last one was used");
	if (type != TYPE_REKEY)
		return;
	if (recv_keys_use(&d->to->rk, payload, got, &index) != RK_OK ||
	    memcmp(got, dh, X25519_LEN) != 0)
		fail("the receiver of a REKEY derives another DH");
	dh_ratchet(&d->recv, got);
	OPENSSL_cleanse(got, sizeof(got));
}

/*
 * One "recordN = DIR epoch E seq S TYPE [index=I] padding=P" record and
 * its lines (doc/PROTOCOL.md Appendix A): seal it with the sender's state,
 * open it with the receiver's, print the description (epoch, seq and
 * index from the states) and every value.
 */
static void
kat_record(const struct block *b, const char *name, const char *desc,
    struct dir *d)
{
	char type_name[16], label[64];
	uint8_t payload[MAX_PAYLOAD], rec[LEN_LEN + MAX_RECORD];
	uint8_t plain[MAX_INNER], dh[X25519_LEN], salt[SECRET_LEN];
	const char *hex, *pad_at;
	size_t len = 0, n;
	int type, pad, got_type;
	size_t got;
	uint64_t index = 0;

	if (sscanf(desc, "%*s epoch %*u seq %*u %15s", type_name) != 1 ||
	    (pad_at = strstr(desc, "padding=")) == NULL ||
	    sscanf(pad_at, "padding=%d", &pad) != 1)
		errx(1, "bad record line: %s", desc);
	for (type = 1; type <= TYPE_DONE; type++)
		if (strcmp(type_names[type], type_name) == 0)
			break;
	if (type > TYPE_DONE)
		errx(1, "bad record type: %s", type_name);
	printf("%s = %s epoch %llu seq %llu %s", name, d->name,
	    (unsigned long long)d->send.epoch,
	    (unsigned long long)d->send.seq, type_name);
	if (type == TYPE_KEY)
		index = d->from->rk.announced;
	else if (type == TYPE_REKEY)
		index = d->from->pk.count - 1;
	if (type == TYPE_KEY || type == TYPE_REKEY)
		printf(" index=%llu", (unsigned long long)index);
	printf(" padding=%d\n", pad);

	if (type == TYPE_KEY)
		len = key_payload(b, name, d, payload);
	else if (type == TYPE_REKEY)
		len = rekey_payload_kat(b, name, d, payload, dh);
	else if (type == TYPE_DATA) {
		snprintf(label, sizeof(label), "%s.payload", name);
		if (strcmp(hex = get(b, label), "-") != 0)
			len = unhex(hex, payload, sizeof(payload));
	}
	print_field(name, "payload", payload, len);
	if (type == TYPE_REKEY) {
		print_field(name, "dh", dh, X25519_LEN);
		hkdf_expand(d->send.secret, "rekey", salt, SECRET_LEN);
		print_field(name, "salt", salt, SECRET_LEN);
	}
	n = seal_record(&d->send, type, payload, len, pad, rec);
	print_field(name, "wire", rec, n);
	if (open_record(&d->recv, rec, n - LEN_LEN, plain, &got_type,
	    &got) != OPEN_OK || got != len || got_type != type ||
	    memcmp(plain, payload, len))
		fail("a sealed record does not open to its payload");
	else
		receive_control(d, type, plain, dh);
	if (type == TYPE_REKEY) {
		dh_ratchet(&d->send, dh);
		if (memcmp(d->send.secret, d->recv.secret, SECRET_LEN) != 0)
			fail("the two ends rekey to different secrets");
		snprintf(label, sizeof(label), "%s%llu", d->name,
		    (unsigned long long)d->send.epoch);
		print_hex(label, d->send.secret, SECRET_LEN);
		print_direction_keys(label, &d->send);
	}
	OPENSSL_cleanse(dh, sizeof(dh));
}

/*
 * What the receiver of a REKEY must refuse (doc/PROTOCOL.md section
 * 5.3), against the listener's receive keys at the vector's end: the
 * connector used key 2, so key 1 is retired, 3 is the newest and 4 has
 * not been announced.
 */
static void
check_rekey_refusals(struct recv_keys *rk)
{
	uint8_t payload[REKEY_LEN], dh[X25519_LEN], pub[X25519_LEN];
	uint32_t index;
	EVP_PKEY *e = x25519_keygen(pub);

	memset(payload, 0, sizeof(payload));
	put_u32(payload, 1);
	if (recv_keys_use(rk, payload, dh, &index) != RK_RETIRED)
		fail("a REKEY naming a retired key was accepted");
	put_u32(payload, 4);
	if (recv_keys_use(rk, payload, dh, &index) != RK_UNANNOUNCED)
		fail("a REKEY naming an unannounced key was accepted");
	put_u32(payload, 3);	/* E = 0: a low-order point */
	if (recv_keys_use(rk, payload, dh, &index) != RK_LOW_ORDER)
		fail("a REKEY with a low-order E was accepted");
	memcpy(payload + INDEX_LEN, pub, X25519_LEN);
	if (recv_keys_use(rk, payload, dh, &index) != RK_OK || rk->due != 1 ||
	    rk->key[0] == NULL || rk->key[1] != NULL || rk->oldest != 3)
		fail("a good REKEY for the newest key was refused");
	EVP_PKEY_free(e);
	OPENSSL_cleanse(dh, sizeof(dh));
}

/* A record with one flipped bit, or replayed, must not open. */
static void
check_forgeries(const uint8_t c2s[SECRET_LEN])
{
	struct direction send, recv;
	uint8_t rec[LEN_LEN + MAX_RECORD], plain[MAX_INNER];
	size_t n, bit, got;
	int type;

	for (bit = 0; bit < 8 * 25; bit += 7) {
		direction_init(&send, c2s, 1);
		direction_init(&recv, c2s, 0);
		n = seal_record(&send, TYPE_DATA, (const uint8_t *)"hello\n", 6,
		    0, rec);
		rec[bit / 8] ^= 1 << (bit % 8);
		if (n != 25 || (bit >= 16 &&
		    open_record(&recv, rec, n - LEN_LEN, plain, &type, &got) !=
		    OPEN_BAD_TAG))
			fail("a record with a flipped bit opened");
		direction_free(&send);
		direction_free(&recv);
	}
	/* A full record, sealed from where the payload lies, with padding. */
	direction_init(&send, c2s, 1);
	direction_init(&recv, c2s, 0);
	memset(plain, 'z', MAX_PAYLOAD);
	n = seal_record(&send, TYPE_DATA, plain, MAX_PAYLOAD, 255, rec);
	if (n != LEN_LEN + MAX_RECORD ||
	    open_record(&recv, rec, n - LEN_LEN, plain, &type, &got) !=
	    OPEN_OK || got != MAX_PAYLOAD ||
	    type != TYPE_DATA || plain[0] != 'z' || plain[MAX_PAYLOAD - 1] != 'z')
		fail("a full padded record does not round-trip");
	direction_free(&send);
	direction_free(&recv);
	direction_init(&send, c2s, 1);
	direction_init(&recv, c2s, 0);
	n = seal_record(&send, TYPE_DATA, (const uint8_t *)"x", 1, 0, rec);
	if (open_record(&recv, rec, n - LEN_LEN, plain, &type, &got) !=
	    OPEN_OK || got != 1 ||
	    open_record(&recv, rec, n - LEN_LEN, plain, &type, &got) !=
	    OPEN_BAD_TAG)
		fail("a replayed record opened");
	direction_free(&send);
	direction_free(&recv);
}

/* The greeting of the vector's inputs (Appendix A), with pB from y. */
static BIGNUM *
vector_greeting(const struct block *b, const struct pake *pk,
    const char *nonce_name, struct greeting *g)
{
	BIGNUM *y = scalar_hex(b, "y");
	unsigned window = atoi(get(b, "window.listener"));

	memset(g, 0, sizeof(*g));
	hs_header(g->hdr, KIND_GREETING);
	g->flags = atoi(get(b, "flags"));
	g->wait = atoi(get(b, "wait"));
	g->window[0] = window >> 8;
	g->window[1] = window & 0xff;
	put_u32(g->iterations, atoi(get(b, "iterations")));
	unhex(get(b, "salt"), g->salt, SALT_LEN);
	unhex(get(b, nonce_name), g->nonce, NONCE_LEN);
	spake2_share(pk, 0, y, g->pB);
	return y;
}

/*
 * The handshake of a secchat/3 session vector (its first block: inputs,
 * messages, secrets, the key set of connection 1), both roles with
 * secchat's own functions; the records are the record layer's.
 */
static void
kat_handshake3(FILE *fp)
{
	static const uint8_t no_salt[SHA256_DIGEST_LENGTH];
	struct block b;
	struct pake pk;
	struct handshake_keys hk, hl;
	struct greeted in;
	struct confirm cf;
	struct keyset ks, kl;
	uint8_t w[SCALAR_LEN], salt[SALT_LEN], aad[AAD_LEN], prk[SECRET_LEN];
	struct direction d;
	const char *pass, *names[] = { "password", "salt", "iterations",
	    "flags", "wait", "window.listener", "window.connector", "nonce1",
	    "x", "y" };
	unsigned window;
	BIGNUM *x;
	size_t i;

	if (!read_block(fp, &b))
		errx(1, "empty session vector");
	pass = get(&b, "password");
	unhex(get(&b, "salt"), salt, SALT_LEN);
	if (derive_w(pass, strlen(pass), salt, atoi(get(&b, "iterations")), w)
	    == -1)
		fail("w = 0");
	pake_init(&pk, w);
	in.y = vector_greeting(&b, &pk, "nonce1", &in.g);
	x = scalar_hex(&b, "x");
	window = atoi(get(&b, "window.connector"));
	hs_header(in.h.hdr, KIND_HELLO);
	in.h.window[0] = window >> 8;
	in.h.window[1] = window & 0xff;
	spake2_share(&pk, 1, x, in.h.pA);
	if (spake2_finish(&pk, 1, x, &in.g, &in.h, &hk) == -1)
		fail("the connector refused the greeting");
	memcpy(in.h.cA, hk.cA, MAC_LEN);
	session_secrets(&hk, &ks);
	/* The listener's side, as it checks and answers. */
	if (spake2_finish(&pk, 0, in.y, &in.g, &in.h, &hl) == -1 ||
	    CRYPTO_memcmp(hl.cA, in.h.cA, MAC_LEN) != 0)
		fail("the listener refused the HELLO");
	session_secrets(&hl, &kl);
	if (memcmp(&hk, &hl, sizeof(hk)) != 0 || memcmp(&ks, &kl, sizeof(ks)))
		fail("connector and listener derived different secrets");
	hs_header(cf.hdr, KIND_CONFIRM);
	memcpy(cf.cB, hl.cB, MAC_LEN);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf("%s = %s\n", names[i], get(&b, names[i]));
	print_hex("w", w, SCALAR_LEN);
	print_hex("pB", in.g.pB, POINT_LEN);
	print_hex("pA", in.h.pA, POINT_LEN);
	print_hex("K", hk.K, POINT_LEN);
	print_hex("greeting1", (uint8_t *)&in.g, sizeof(in.g));
	print_hex("hello", (uint8_t *)&in.h, sizeof(in.h));
	print_hex("confirm", (uint8_t *)&cf, sizeof(cf));
	memcpy(aad, &in.g, offsetof(struct greeting, pB));
	memcpy(aad + offsetof(struct greeting, pB), in.h.window, 2);
	print_hex("AAD", aad, AAD_LEN);
	print_hex("TT", hk.tt, hk.tt_len);
	print_hex("H", hk.tt_hash, sizeof(hk.tt_hash));
	print_hex("Ke", hk.Ke, HALF_LEN);
	print_hex("Ka", hk.Ka, HALF_LEN);
	print_hex("KcA", hk.KcA, HALF_LEN);
	print_hex("KcB", hk.KcB, HALF_LEN);
	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, no_salt, sizeof(no_salt),
	    hk.Ke, HALF_LEN, NULL, 0, prk, sizeof(prk));
	print_hex("PRK0", prk, SECRET_LEN);
	print_hex("sid", ks.sid, SID_LEN);
	print_hex("conn1.c2s0", ks.c2s, SECRET_LEN);
	print_hex("conn1.s2c0", ks.s2c, SECRET_LEN);
	print_hex("rs0", ks.rs, SECRET_LEN);
	direction_init(&d, ks.c2s, 1);
	print_direction_keys("conn1.c2s0", &d);
	direction_free(&d);
	direction_init(&d, ks.s2c, 1);
	print_direction_keys("conn1.s2c0", &d);
	direction_free(&d);
	BN_free(x);
	BN_free(in.y);
	pake_free(&pk);
}

/*
 * REFUSALs and the greetings of CODE and NO_NEW (secchat3-refusals.txt):
 * the bytes, and the connector's lines for bob.example, each reason as if
 * it came where it may.
 */
static void
kat_refusals3(FILE *fp)
{
	struct block b;
	struct refusal rf;
	struct greeting g;
	struct pake pk;
	uint8_t w[SCALAR_LEN], salt[SALT_LEN];
	char name[64], line[NOTE_MAX];
	const char *code;
	size_t len;
	BIGNUM *y;
	int reason, status, first = 1;

	while (read_block(fp, &b)) {
		if (b.n > 0 && strcmp(b.f[0].name, "code") == 0)
			break;
		snprintf(name, sizeof(name), "%.40s", b.f[0].name);
		name[strcspn(name, ".")] = '\0';
		reason = atoi(name + strlen("refusal"));
		make_refusal(&rf, reason, atoi(b.f[0].value));
		status = refusal_line(line, sizeof(line), "bob.example",
		    (uint8_t *)&rf, 0, 0xffff);
		printf("%s%s.seconds = %s\n", first ? "" : "\n", name,
		    b.f[0].value);
		print_hex(name, (uint8_t *)&rf, sizeof(rf));
		printf("%s.line = %s\n", name, line);
		if (reason == REF_WRONG_SECRET) {
			(void)refusal_line(line, sizeof(line), "bob.example",
			    (uint8_t *)&rf, 1, 0xffff);
			printf("%s.line.code = %s\n", name, line);
		}
		printf("%s.status = %d\n", name, status);
		first = 0;
	}
	code = get(&b, "code");
	printf("\ncode = %s\n", code);
	for (reason = 1; reason < b.n && strcmp(b.f[reason].name, "password")
	    != 0; reason++)
		printf("%s = %s\n", b.f[reason].name, b.f[reason].value);
	snprintf(line, sizeof(line), "%s", code);
	len = password_as_code(line, strlen(line));
	printf("password = %s\n", line);
	unhex(get(&b, "salt"), salt, SALT_LEN);
	if (derive_w(line, len, salt, atoi(get(&b, "iterations")), w) == -1)
		fail("w = 0");
	print_hex("w", w, SCALAR_LEN);
	pake_init(&pk, w);
	y = scalar_hex(&b, "y");
	BN_free(make_greeting(&pk, &g, FLAG_CODE, atoi(get(&b, "wait")),
	    atoi(get(&b, "iterations")), salt));
	g.window[0] = atoi(get(&b, "window")) >> 8;
	g.window[1] = atoi(get(&b, "window")) & 0xff;
	unhex(get(&b, "nonce"), g.nonce, NONCE_LEN);
	spake2_share(&pk, 0, y, g.pB);
	print_hex("greeting.code", (uint8_t *)&g, sizeof(g));
	g.flags = FLAG_NO_NEW;
	memset(g.pB, 0, POINT_LEN);
	print_hex("greeting.no_new", (uint8_t *)&g, sizeof(g));
	BN_free(y);
	pake_free(&pk);
}

/* One address guessing as fast as its penalties let it. */
static unsigned
guesses_in(struct source *src, int64_t *t, int64_t until)
{
	unsigned n = 0;

	while (*t < until) {
		penalise(src, *t);
		n++;
		*t = src->until > *t ? src->until : *t + 1;
	}
	return n;
}

static void
kat_serving(FILE *fp)
{
	static const int64_t t0 = 1000000000;
	struct source src;
	struct server sv;
	int64_t t = t0;
	unsigned i, shown = 0;
	char *line, *nl;

	(void)fp;
	memset(&src, 0, sizeof(src));
	for (i = 1; i <= 16; i++) {
		penalise(&src, t);
		printf("failure = %u\nrefused_s = %lld\n\n", i,
		    (long long)(src.until > t ? (src.until - t) / 1000 : 0));
		if (src.until > t)
			t = src.until;
	}
	t += PEN_QUIET_MS;
	penalise(&src, t);
	printf("after_a_quiet_hour = failure %u\n\n", src.fails);
	memset(&src, 0, sizeof(src));
	t = t0;
	printf("guesses_first_hour = %u\n", guesses_in(&src, &t, t0 + 3600000));
	printf("guesses_second_hour = %u\n\n",
	    guesses_in(&src, &t, t0 + 7200000));

	memset(&sv, 0, sizeof(sv));
	sv.errq.cap = QUEUE_CAP;
	if ((sv.errq.data = malloc(sv.errq.cap)) == NULL)
		err(1, "malloc");
	memset(&src, 0, sizeof(src));
	strcpy(src.host, "192.0.2.7");
	for (i = 0; i < 40; i++)
		shown += log_allowed(&sv, &src, LOG_FAILED, t0 + i * 1000);
	printf("lines = 40\nshown = %u\n", shown);
	(void)log_allowed(&sv, &src, LOG_FAILED, t0 + MINUTE_MS);
	sv.errq.data[sv.errq.len] = '\0';
	for (line = (char *)sv.errq.data; (nl = strchr(line, '\n')) != NULL;
	    line = nl + 1) {
		*nl = '\0';
		printf("log = %s\n", line);
	}
	free(sv.errq.data);
}

int
main(int argc, char *argv[])
{
	FILE *fp;

	if (argc != 3)
		errx(2, "usage: kat pbkdf2|spake2|handshake3|refusals3|serving "
		    "FILE");
	if ((fp = fopen(argv[2], "r")) == NULL)
		err(1, "%s", argv[2]);
	if (strcmp(argv[1], "pbkdf2") == 0)
		kat_pbkdf2(fp);
	else if (strcmp(argv[1], "spake2") == 0)
		kat_spake2(fp);
	else if (strcmp(argv[1], "handshake3") == 0)
		kat_handshake3(fp);
	else if (strcmp(argv[1], "refusals3") == 0)
		kat_refusals3(fp);
	else if (strcmp(argv[1], "serving") == 0)
		kat_serving(fp);
	else
		errx(2, "unknown vector kind %s", argv[1]);
	fclose(fp);
	return failures != 0;
}
