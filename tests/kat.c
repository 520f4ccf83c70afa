/*
 * Known-answer tests: recompute a vector file from its inputs with
 * secchat's own functions and print it in the same "name = value" form,
 * so that test.sh can diff the output against the file.
 *
 *	kat pbkdf2 FILE		RFC 7914 section 11 (PBKDF2-HMAC-SHA256)
 *	kat spake2 FILE		RFC 9382 Appendix B (SPAKE2-P256)
 *	kat handshake3 FILE	a secchat/3 session's handshake (its first block)
 *	kat session3 FILE	the handshake, connection 1's records, the
 *				resume blocks of connections 2 and 3 and
 *				their records: the whole file
 *	kat end3 FILE		END records, their words, the lines of 9.3 and
 *				9.4 (with its END part), amounts
 *	kat x25519 FILE		shares refused as public-equivalent or DH zero
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

/* The 32-byte input NAME.FIELD. */
static void
input32(const struct block *b, const char *name, const char *field,
    uint8_t out[X25519_LEN])
{
	char label[64];

	snprintf(label, sizeof(label), "%s.%s", name, field);
	if (unhex(get(b, label), out, X25519_LEN) != X25519_LEN)
		errx(1, "%s is not 32 bytes", label);
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

/* The input NAME.FIELD, hex or "-", into p; its length. */
static size_t
input_bytes(const struct block *b, const char *name, const char *field,
    uint8_t *p, size_t cap)
{
	char label[64];
	const char *hex;

	snprintf(label, sizeof(label), "%s.%s", name, field);
	hex = get(b, label);
	return strcmp(hex, "-") == 0 ? 0 : unhex(hex, p, cap);
}

/* The record type of a name, as secchat's receiver names them. */
static int
type_by_name(const char *name)
{
	int type;

	for (type = TYPE_DATA; type <= TYPE_END; type++)
		if (strcmp(rec_types[type].name, name) == 0)
			return type;
	errx(1, "bad record type: %s", name);
}

/*
 * A secchat session that is only a state: no terminal, no hex lines, its
 * "secchat: " lines (session_fail's, note_always's) kept in rep.last and
 * written to /dev/null.  Named bob, -L loss seconds.
 */
static struct options side_opt;

static void
side_begin(struct session *s)
{
	static int devnull = -1;

	side_opt.bflag = side_opt.qflag = 1;	/* no chat editor */
	side_opt.name = "bob";
	side_opt.interval = DEF_INTERVAL;
	side_opt.loss = DEF_LOSS;
	side_opt.retain = (size_t)DEF_RETAIN_MIB << 20;
	side_opt.timeout = -1;
	if (devnull == -1 && (devnull = open("/dev/null", O_WRONLY)) == -1)
		err(1, "/dev/null");
	session_alloc(s, &side_opt);
	s->rep.fd = devnull;
	s->hex_tty = s->out_tty = s->stdin_tty = 0;
	conn_begin(s, -1);
}

/* Hand the records in from's txb to its peer, as the engine opens them. */
static void
deliver(struct session *from, struct session *to)
{
	struct buf *rxb = &to->b.rxb;
	size_t n = buf_pending(&from->b.txb);

	if (buf_room(rxb, n) < n)
		errx(1, "records do not fit the receiver's buffer");
	memcpy(rxb->data + rxb->len, from->b.txb.data + from->b.txb.pos, n);
	rxb->len += n;
	if (process_rx(&to->c, &to->b, &to->st, &to->rep) != GO_ON) {
		printf("FAIL: the receiver: %s\n", to->rep.last);
		failures++;
	} else if (buf_pending(rxb) != 0)
		fail("the receiver left a record unopened");
}

/* The receiver writes what it opened (W, section 7.1). */
static void
write_out(struct session *s)
{
	size_t n = buf_pending(&s->b.out);

	s->b.out.pos += n;
	written_add(&s->b.wr, n, n);
}

/*
 * The session vector's sides, [0] the connector (c2s), [1] the listener,
 * and the connection they are on (conn1, ...); cut: its records are
 * sealed, never received.
 */
static struct session sides[2];
static int conn_number, conn_cut;

/*
 * DATA records whose receiver opens them but has not written them when
 * the connection is cut (the vector's header: the listener's W.c2s stays
 * 6), so that its resume ACK drops them.
 */
static const char *const unwritten[] = { "record11" };

static int
written_now(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(unwritten) / sizeof(unwritten[0]); i++)
		if (strcmp(unwritten[i], name) == 0)
			return 0;
	return 1;
}

/* What one record carries, for its lines. */
struct sealed {
	uint8_t input[X25519_LEN];	/* a KEY's private, a REKEY's e */
	uint8_t payload[MAX_PAYLOAD], dh[X25519_LEN], salt[SECRET_LEN];
	size_t	len;
};

/* KEY: the sender's next receive key, fixed by the vector (send_key). */
static void
seal_key(const struct block *b, const char *name, struct session *s,
    struct sealed *sd)
{
	input32(b, name, "private", sd->input);
	if (!s->c.rk.due)
		fail("a KEY was sealed before it was due");
	recv_keys_add(&s->c.rk, x25519_from_private(sd->input, sd->payload));
	sd->len = X25519_LEN;
	send_record(&s->c, &s->rep, &s->b.txb, TYPE_KEY, sd->payload,
	    X25519_LEN, 0);
}

/* REKEY with the vector's one-time key, then the ratchet (send_rekey). */
static void
seal_rekey(const struct block *b, const char *name, struct session *s,
    struct sealed *sd)
{
	uint8_t pub[X25519_LEN];

	input32(b, name, "ephemeral", sd->input);
	hkdf_expand(s->c.tx.secret, "rekey", sd->salt, SECRET_LEN);
	if (rekey_payload(&s->c.pk, x25519_from_private(sd->input, pub),
	    sd->payload, sd->dh) == -1)
		fail("a REKEY's DH is all zero");
	sd->len = REKEY_LEN;
	send_record(&s->c, &s->rep, &s->b.txb, TYPE_REKEY, sd->payload,
	    REKEY_LEN, 0);
	dh_ratchet(&s->c.tx, sd->dh);
}

/*
 * DATA of the vector's payload, padded to padding bytes (send_data).
 * After a resume, [A, S) is sealed again from the retained input (8.5):
 * the payload must be what is there.
 */
static void
seal_data(struct session *s, struct sealed *sd, int padding)
{
	struct buf *in = &s->b.in;

	if (s->st.next < s->st.sealed) {
		if (buf_pending(in) < sd->len || memcmp(in->data + in->pos,
		    sd->payload, sd->len) != 0)
			fail("the DATA sealed again is not the retained input");
		send_data(&s->c, &s->rep, &s->b, &s->st,
		    sd->len + 1 + padding, sd->len, now_ms());
		return;
	}
	if (buf_room(in, sd->len) < sd->len)
		errx(1, "the sender's input buffer is full");
	memcpy(in->data + in->len, sd->payload, sd->len);
	in->len += sd->len;
	send_data(&s->c, &s->rep, &s->b, &s->st, sd->len + 1 + padding,
	    sd->len, now_ms());
}

/* CLOSE and DONE as fill_tx seals them, when they are due. */
static void
seal_end_of_stream(struct session *s, int type)
{
	if (type == TYPE_CLOSE) {
		tx_input_ended(&s->c);
		if (s->c.tx_state != TX_DRAINING || buf_pending(&s->b.in) != 0)
			fail("a CLOSE was sealed before the input was");
		send_record(&s->c, &s->rep, &s->b.txb, TYPE_CLOSE, NULL, 0, 0);
		tx_close_sealed(&s->c);
		s->st.closed = 1;
		return;
	}
	if (s->c.tx_state != TX_CLOSED || !rx_closed(&s->c) ||
	    written_count(&s->b.wr) != s->c.recv_bytes)
		fail("a DONE was sealed before it was due");
	send_record(&s->c, &s->rep, &s->b.txb, TYPE_DONE, NULL, 0, 0);
	tx_done_sealed(&s->c);
}

/* Seal one record of the vector with the sender's functions. */
static void
seal_one(const struct block *b, const char *name, struct session *s,
    int type, int padding, struct sealed *sd)
{
	sd->len = 0;
	switch (type) {
	case TYPE_KEY:
		seal_key(b, name, s, sd);
		break;
	case TYPE_REKEY:
		seal_rekey(b, name, s, sd);
		break;
	case TYPE_DATA:
		sd->len = input_bytes(b, name, "payload", sd->payload,
		    MAX_PAYLOAD);
		seal_data(s, sd, padding);
		break;
	case TYPE_ACK:
		send_ack(&s->c, &s->rep, &s->b.txb, &s->st,
		    written_count(&s->b.wr));
		s->c.resume_ack = 0;	/* fill_one: the resume point */
		sd->len = ACK_LEN;
		put_u32(sd->payload, s->st.ack_sent >> 32);
		put_u32(sd->payload + 4, s->st.ack_sent & 0xffffffff);
		break;
	case TYPE_PING:
		if (input_bytes(b, name, "payload", sd->payload, PING_LEN) !=
		    PING_LEN)
			errx(1, "%s: a PING's payload is 2 bytes", name);
		sd->len = PING_LEN;
		send_ping(&s->c, &s->rep, &s->b.txb,
		    sd->payload[0] << 8 | sd->payload[1]);
		break;
	case TYPE_CLOSE:
	case TYPE_DONE:
		seal_end_of_stream(s, type);
		break;
	default:
		errx(1, "%s: no %s records in a session vector", name,
		    rec_types[type].name);
	}
}

/*
 * One "recordN = CONN DIR epoch E seq S TYPE [index=I] padding=P" record
 * and its lines (doc/PROTOCOL.md Appendix A): sealed by the sender's
 * session, received by the peer's unless the connection is cut; the
 * description's epoch, seq, index and padding come from the sender.
 */
static void
kat_record(const struct block *b, const char *name, const char *desc)
{
	char conn[16], dir[4], type_name[16], label[64], desc2[128];
	struct session *from, *to;
	struct sealed sd;
	const char *pad_at;
	uint64_t epoch, seq, index;
	size_t n;
	int type, padding;

	if (sscanf(desc, "%15s %3s epoch %*u seq %*u %15s", conn, dir,
	    type_name) != 3 || (pad_at = strstr(desc, "padding=")) == NULL ||
	    sscanf(pad_at, "padding=%d", &padding) != 1 ||
	    (strcmp(dir, "c2s") != 0 && strcmp(dir, "s2c") != 0))
		errx(1, "bad record line: %s", desc);
	if (strncmp(conn, "conn", 4) != 0 || atoi(conn + 4) != conn_number)
		errx(1, "%s: not on connection %d", name, conn_number);
	from = &sides[dir[0] == 's'];
	to = &sides[dir[0] == 'c'];
	type = type_by_name(type_name);
	epoch = from->c.tx.epoch;
	seq = from->c.tx.seq;
	index = type == TYPE_KEY ? from->c.rk.announced : from->c.pk.count - 1;
	snprintf(desc2, sizeof(desc2), "conn%d %s epoch %llu seq %llu %s%s",
	    conn_number, dir, (unsigned long long)epoch,
	    (unsigned long long)seq, type_name,
	    type == TYPE_KEY || type == TYPE_REKEY ? " index=" : "");
	from->b.txb.pos = from->b.txb.len = 0;
	seal_one(b, name, from, type, padding, &sd);
	n = buf_pending(&from->b.txb);
	printf("%s = %s", name, desc2);
	if (type == TYPE_KEY || type == TYPE_REKEY)
		printf("%llu", (unsigned long long)index);
	printf(" padding=%zu\n", n - LEN_LEN - TAG_LEN - sd.len - 1);
	if (type == TYPE_KEY || type == TYPE_REKEY)
		print_field(name, type == TYPE_KEY ? "private" : "ephemeral",
		    sd.input, X25519_LEN);
	print_field(name, "payload", sd.payload, sd.len);
	if (type == TYPE_REKEY) {
		print_field(name, "dh", sd.dh, X25519_LEN);
		print_field(name, "salt", sd.salt, SECRET_LEN);
	}
	print_field(name, "wire", from->b.txb.data, n);
	if (!conn_cut) {
		deliver(from, to);
		resumable_proved(to);	/* as the session's loop, after it */
		if (type == TYPE_DATA && written_now(name))
			write_out(to);
	}
	if (type == TYPE_REKEY) {
		if (!conn_cut && memcmp(from->c.tx.secret, to->c.rx.secret,
		    SECRET_LEN) != 0)
			fail("the two ends rekey to different secrets");
		snprintf(label, sizeof(label), "conn%d.%s%llu", conn_number,
		    dir, (unsigned long long)from->c.tx.epoch);
		print_hex(label, from->c.tx.secret, SECRET_LEN);
		print_direction_keys(label, &from->c.tx);
	}
	OPENSSL_cleanse(&sd, sizeof(sd));
}

/* The six counters after record name (Appendix A). */
static void
print_counters(const char *name)
{
	printf("%s.W.c2s = %llu\n%s.W.s2c = %llu\n", name,
	    (unsigned long long)written_count(&sides[1].b.wr), name,
	    (unsigned long long)written_count(&sides[0].b.wr));
	printf("%s.A.c2s = %llu\n%s.A.s2c = %llu\n", name,
	    (unsigned long long)sides[0].st.acked, name,
	    (unsigned long long)sides[1].st.acked);
	printf("%s.S.c2s = %llu\n%s.S.s2c = %llu\n", name,
	    (unsigned long long)sides[0].st.sealed, name,
	    (unsigned long long)sides[1].st.sealed);
}

/* The records, cuts and counters of b from its field first on. */
static void
kat_records(const struct block *b, int first)
{
	const char *name, *dot;
	char rec[64];
	int i;

	for (i = first; i < b->n; i++) {
		name = b->f[i].name;
		dot = strchr(name, '.');
		if (dot == NULL && strncmp(name, "record", 6) == 0)
			kat_record(b, name, b->f[i].value);
		else if (dot == NULL && strncmp(name, "cut", 3) == 0) {
			printf("%s = conn%d\n", name, conn_number);
			conn_cut = 1;
		} else if (dot != NULL && strcmp(dot, ".W.c2s") == 0) {
			snprintf(rec, sizeof(rec), "%.*s", (int)(dot - name),
			    name);
			print_counters(rec);
		} else if (dot == NULL || (strncmp(name, "record", 6) != 0 &&
		    strncmp(name, "conn", 4) != 0))
			errx(1, "unexpected %s in a records block", name);
	}
}

/*
 * What the receiver of a REKEY must refuse (doc/PROTOCOL.md section
 * 5.3), against the listener's receive keys at the end of connection 1:
 * it announced keys 0 and 1, and the connector used key 0.
 */
static void
check_rekey_refusals(struct recv_keys *rk)
{
	uint8_t payload[REKEY_LEN], dh[X25519_LEN], pub[X25519_LEN];
	uint32_t index;
	EVP_PKEY *e = x25519_keygen(pub);

	memset(payload, 0, sizeof(payload));
	put_u32(payload, 2);
	if (recv_keys_use(rk, payload, dh, &index) != RK_UNANNOUNCED)
		fail("a REKEY naming an unannounced key was accepted");
	put_u32(payload, 1);
	payload[INDEX_LEN] = 9;
	if (recv_keys_use(rk, payload, dh, &index) != RK_PUBLIC)
		fail("a REKEY with E = 9 was accepted");
	payload[INDEX_LEN] = 0;	/* E = 0: a low-order point */
	if (recv_keys_use(rk, payload, dh, &index) != RK_LOW_ORDER)
		fail("a REKEY with a low-order E was accepted");
	memcpy(payload + INDEX_LEN, pub, X25519_LEN);
	if (recv_keys_use(rk, payload, dh, &index) != RK_OK || rk->due != 1 ||
	    rk->key[0] == NULL || rk->key[1] != NULL || rk->oldest != 1)
		fail("a good REKEY for the newest key was refused");
	put_u32(payload, 0);
	if (recv_keys_use(rk, payload, dh, &index) != RK_RETIRED)
		fail("a REKEY naming a retired key was accepted");
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

/* The session vector's first block: its inputs, for the later greetings. */
static struct block inputs;

/*
 * The handshake of a secchat/3 session vector (its first block: inputs,
 * messages, secrets, the key set of connection 1 into out), both roles
 * with secchat's own functions.
 */
static void
handshake3(FILE *fp, struct keyset *out)
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
	inputs = b;
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
	*out = ks;
	OPENSSL_cleanse(&ks, sizeof(ks));
	BN_free(x);
	BN_free(in.y);
	pake_free(&pk);
}

static void
kat_handshake3(FILE *fp)
{
	struct keyset ks;

	handshake3(fp, &ks);
	OPENSSL_cleanse(&ks, sizeof(ks));
}

/* The one-time key NAME.FIELD of the vector, and its public key. */
static EVP_PKEY *
input_key(const struct block *b, const char *name, const char *field,
    uint8_t pub[X25519_LEN])
{
	uint8_t priv[X25519_LEN];
	EVP_PKEY *key;

	input32(b, name, field, priv);
	key = x25519_from_private(priv, pub);
	print_field(name, field, priv, X25519_LEN);
	OPENSSL_cleanse(priv, sizeof(priv));
	return key;
}

/* A key set's lines: connN.c2s0, connN.s2c0, rs_name, the keys and IVs. */
static void
print_keyset(const struct keyset *ks, const char *rs_name)
{
	struct direction d;
	char label[32];

	snprintf(label, sizeof(label), "conn%d.c2s0", conn_number);
	print_hex(label, ks->c2s, SECRET_LEN);
	snprintf(label, sizeof(label), "conn%d.s2c0", conn_number);
	print_hex(label, ks->s2c, SECRET_LEN);
	print_hex(rs_name, ks->rs, SECRET_LEN);
	snprintf(label, sizeof(label), "conn%d.c2s0", conn_number);
	direction_init(&d, ks->c2s, 1);
	print_direction_keys(label, &d);
	direction_free(&d);
	snprintf(label, sizeof(label), "conn%d.s2c0", conn_number);
	direction_init(&d, ks->s2c, 1);
	print_direction_keys(label, &d);
	direction_free(&d);
}

/*
 * mkC, mkL, DH, th and PRK(g') of 8.2 and 8.4 for the lines: resume_mac
 * and resume_keys erase theirs, so they are made again here from the
 * same functions of secchat (hkdf_expand, sha256, hkdf), as handshake3
 * makes PRK0.
 */
static void
print_resume_secrets(const char *name, const uint8_t rs[SECRET_LEN],
    const uint8_t dh[X25519_LEN], const uint8_t tr[TR_LEN])
{
	uint8_t mk[SECRET_LEN], salt[SECRET_LEN], prk[SECRET_LEN];
	uint8_t ikm[X25519_LEN + SHA256_DIGEST_LENGTH];

	hkdf_expand(rs, LABEL_MKC, mk, SECRET_LEN);
	print_field(name, "mkC", mk, SECRET_LEN);
	hkdf_expand(rs, LABEL_MKL, mk, SECRET_LEN);
	print_field(name, "mkL", mk, SECRET_LEN);
	print_field(name, "dh", dh, X25519_LEN);
	memcpy(ikm, dh, X25519_LEN);
	sha256(tr, TR_LEN, ikm + X25519_LEN);
	print_field(name, "th", ikm + X25519_LEN, SHA256_DIGEST_LENGTH);
	hkdf_expand(rs, LABEL_RESUME, salt, SECRET_LEN);
	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, sizeof(salt), ikm,
	    sizeof(ikm), NULL, 0, prk, sizeof(prk));
	print_field(name, "PRK", prk, SECRET_LEN);
	OPENSSL_cleanse(mk, sizeof(mk));
	OPENSSL_cleanse(ikm, sizeof(ikm));
	OPENSSL_cleanse(prk, sizeof(prk));
}

/*
 * Connection n's resume block (section 8, Appendix A), from its field
 * nonceN on: the lone listener's greeting while it waits (make_greeting
 * with NO_NEW), the connector's RESUME for its g and rs(g), the
 * listener's checks (resume_check, whose own RESUMED has a random e_L,
 * so only its verdict counts) and the vector's RESUMED, both key sets
 * (resume_keys), the listener's commit and, unless the RESUMED is lost,
 * the connector's, by conn_resumed.  connector_resume and resume_check
 * draw e_C and e_L themselves (x25519_keygen): with the vector's fixed
 * keys, the messages are made here as they make them, with resume_mac.
 * The index of the block's first record or cut.
 */
static int
kat_resume(const struct block *b, int n)
{
	struct session *con = &sides[0], *lis = &sides[1];
	uint8_t tr[TR_LEN], trc[TR_LEN], dh[X25519_LEN], dhc[X25519_LEN];
	uint8_t mac[MAC_LEN];
	struct resume *q = (struct resume *)(tr + TR_RESUME);
	struct resumed *a = (struct resumed *)(tr + TR_RESUMED);
	struct greeting g;
	struct keyset ks, kc;
	struct rejoin j;
	const uint8_t *rs;
	char name[32], label[48];
	unsigned window = atoi(get(&inputs, "window.listener"));
	uint8_t salt[SALT_LEN];
	EVP_PKEY *ec, *el;
	int i, old, lost;

	conn_number = n;
	conn_cut = 0;
	/* The greeting of a lone listener whose session waits (NO_NEW). */
	unhex(get(&inputs, "salt"), salt, SALT_LEN);
	if (make_greeting(NULL, &g, FLAG_NO_NEW, atoi(get(&inputs, "wait")),
	    atoi(get(&inputs, "iterations")), salt) != NULL)
		fail("a NO_NEW greeting has a share");
	put_window(g.window, window);
	snprintf(label, sizeof(label), "nonce%d", n);
	unhex(get(b, label), g.nonce, NONCE_LEN);
	printf("%s = %s\n", label, get(b, label));
	snprintf(label, sizeof(label), "greeting%d", n);
	print_hex(label, (uint8_t *)&g, sizeof(g));
	memset(tr, 0, sizeof(tr));
	memcpy(tr + TR_GREETING, &g, sizeof(g));

	/* The connector's RESUME: its g and rs(g) (connector_resume). */
	snprintf(name, sizeof(name), "resume%d", n);
	hs_header(q->hdr, KIND_RESUME);
	memcpy(q->sid, con->rm.sid, SID_LEN);
	put_u32(q->gen, con->rm.gen);
	ec = input_key(b, name, "eC", q->e);
	resume_mac(con->rm.rs, LABEL_MKC, tr, TR_RESUME +
	    offsetof(struct resume, mac), q->mac);
	print_hex(name, (uint8_t *)q, sizeof(*q));

	/* The listener's checks 2 to 5 (8.3), then the vector's RESUMED. */
	if (memcmp(q->sid, lis->rm.sid, SID_LEN) != 0)
		fail("the RESUME's sid is not the listener's session");
	memcpy(trc, tr, sizeof(trc));
	if (resume_check(&lis->rm, trc, &ks, &old) != 0)
		fail("the listener refused the RESUME");
	OPENSSL_cleanse(&ks, sizeof(ks));
	rs = old ? lis->rm.prev : lis->rm.rs;
	hs_header(a->hdr, KIND_RESUMED);
	el = input_key(b, name, "eL", a->e);
	resume_mac(rs, LABEL_MKL, tr, TR_RESUMED +
	    offsetof(struct resumed, mac), a->mac);
	snprintf(label, sizeof(label), "resumed%d", n);
	print_hex(label, (uint8_t *)a, sizeof(*a));
	snprintf(label, sizeof(label), "resumed%d.lost", n);
	lost = 0;
	for (i = 0; i < b->n; i++)
		if (strcmp(b->f[i].name, label) == 0)
			lost = strcmp(b->f[i].value, "yes") == 0;
	if (lost)
		printf("%s = yes\n", label);
	if (x25519(el, q->e, dh) == -1)
		fail("the listener's resume DH is zero");
	print_resume_secrets(name, rs, dh, tr);
	resume_keys(rs, dh, tr, &ks);

	/* The connector's checks (8.4), if the RESUMED reaches it. */
	if (!lost) {
		resume_mac(con->rm.rs, LABEL_MKL, tr, TR_RESUMED +
		    offsetof(struct resumed, mac), mac);
		if (CRYPTO_memcmp(mac, a->mac, MAC_LEN) != 0)
			fail("the connector refused the RESUMED's mac_L");
		if (x25519_public_equivalent(a->e) ||
		    x25519(ec, a->e, dhc) == -1)
			fail("the connector refused the RESUMED's key");
		resume_keys(con->rm.rs, dhc, tr, &kc);
		if (memcmp(kc.c2s, ks.c2s, SECRET_LEN) != 0 ||
		    memcmp(kc.s2c, ks.s2c, SECRET_LEN) != 0 ||
		    memcmp(kc.rs, ks.rs, SECRET_LEN) != 0)
			fail("connector and listener resumed to different keys");
	}
	EVP_PKEY_free(ec);
	EVP_PKEY_free(el);

	/* The commits (8.4): the listener's g after it names rs. */
	if (lost)	/* the rs that the redo replaces */
		snprintf(label, sizeof(label), "conn%d.rs%lu", n,
		    (unsigned long)lis->rm.gen + (old ? 0 : 1));
	else
		snprintf(label, sizeof(label), "rs%lu",
		    (unsigned long)lis->rm.gen + (old ? 0 : 1));
	print_keyset(&ks, label);
	memset(&j, 0, sizeof(j));
	j.fd = -1;
	j.ks = ks;
	j.old = old;
	conn_resumed(lis, &j);
	if (!lost) {
		memset(&j, 0, sizeof(j));
		j.fd = -1;
		j.ks = kc;
		conn_resumed(con, &j);
		if (con->rm.gen != lis->rm.gen ||
		    memcmp(con->rm.rs, lis->rm.rs, SECRET_LEN) != 0)
			fail("the two sides keep different resumption secrets");
	}
	OPENSSL_cleanse(&ks, sizeof(ks));
	OPENSSL_cleanse(&kc, sizeof(kc));
	OPENSSL_cleanse(dhc, sizeof(dhc));
	for (i = 0; i < b->n; i++)
		if (strchr(b->f[i].name, '.') == NULL &&
		    (strncmp(b->f[i].name, "record", 6) == 0 ||
		    strncmp(b->f[i].name, "cut", 3) == 0))
			break;
	return i;
}

/*
 * A secchat/3 session vector: the handshake, then connection 1's records,
 * each sealed by the sending side's secchat session and opened by the
 * other's (process_rx, with every check of section 4), then the resume
 * blocks of connections 2 and 3 (kat_resume) and their records, on the
 * sessions that resume.
 */
static void
kat_session3(FILE *fp)
{
	struct block b;
	struct keyset ks, copy;
	int i, n = 1;

	handshake3(fp, &ks);
	check_forgeries(ks.c2s);
	for (i = 0; i < 2; i++) {
		side_begin(&sides[i]);
		copy = ks;
		conn_keys(&sides[i], i == 0, &copy);
	}
	conn_number = 1;
	conn_cut = 0;
	while (read_block(fp, &b)) {
		printf("\n");
		if (strncmp(b.f[0].name, "nonce", 5) != 0) {
			kat_records(&b, 0);
			continue;
		}
		if (n == 1)
			check_rekey_refusals(&sides[1].c.rk);
		if (atoi(b.f[0].name + 5) != ++n)
			errx(1, "%s: not connection %d", b.f[0].name, n);
		kat_records(&b, kat_resume(&b, n));
	}
	if (n == 1)
		check_rekey_refusals(&sides[1].c.rk);
	/* rs(0) went when the listener opened the connector's KEY 0 (8.4). */
	if (n == 3 && (sides[1].rm.has_prev || sides[1].rm.gen != 1 ||
	    sides[0].rm.gen != 1))
		fail("the generations after the resumes are not 1, rs0 gone");
	for (i = 0; i < 2; i++)
		session_free(&sides[i]);
	OPENSSL_cleanse(&ks, sizeof(ks));
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

/*
 * The END vector's session: one secchat session whose sending direction
 * seals each END and whose receiving direction opens it, under the
 * vector's secret; the ENDs it opened, by reason, for the states.
 */
static struct session es;
static struct end ends[END_OTHER + 1];

/* secchat's line for the peer's END e (peer_stopped), and its status. */
static int
end_line(const struct end *e, int chat)
{
	es.c.peer_end = *e;
	es.rep.chat = chat;
	return peer_stopped(&es);
}

/* endR.chat and endR.phrase: the phrase is the line of a bare state. */
static void
print_end_words(const char *name, const struct end *e)
{
	const char *peer = es.chat.view.peer;
	size_t n = strlen(peer);

	(void)end_line(e, 1);
	printf("%s.chat = %s\n", name, es.rep.last);
	(void)end_line(e, 0);
	if (strncmp(es.rep.last, peer, n) != 0 || es.rep.last[n] != ' ')
		fail("a phrase's line does not start with the peer's name");
	printf("%s.phrase = %s\n", name, es.rep.last + n + 1);
}

/* The END of reason r, sealed at seq r - 1 by send_end, and opened. */
static void
kat_end_record(const struct block *b, int r, const uint8_t secret[SECRET_LEN])
{
	char name[16], label[32], text[END_TEXT_MAX + 1];
	uint8_t plain[MAX_INNER];
	struct direction d;
	size_t n, len;
	int type;

	snprintf(name, sizeof(name), "end%d", r);
	len = input_bytes(b, name, "text", (uint8_t *)text, END_TEXT_MAX);
	text[len] = '\0';
	direction_init(&es.c.tx, secret, 1);
	direction_init(&es.c.rx, secret, 0);
	es.c.tx.seq = es.c.rx.seq = r - 1;
	es.c.tx_state = TX_OPEN;
	es.c.rx_state = RX_OPEN;
	memset(&es.end, 0, sizeof(es.end));
	snprintf(label, sizeof(label), "%s.value", name);
	end_set(&es, r, strtoul(get(b, label), NULL, 10), text);
	es.b.txb.pos = es.b.txb.len = 0;
	send_end(&es.c, &es.b.txb, &es.st, written_count(&es.b.wr), &es.rep,
	    &es.end);
	n = buf_pending(&es.b.txb);
	direction_init(&d, secret, 0);
	d.seq = r - 1;
	if (open_record(&d, es.b.txb.data, n - LEN_LEN, plain, &type, &len) !=
	    OPEN_OK || type != TYPE_END)
		errx(1, "%s does not open", name);
	direction_free(&d);
	deliver(&es, &es);
	ends[r] = es.c.peer_end;
	printf("%s.value = %lu\n", name, (unsigned long)ends[r].value);
	print_field(name, "text", (uint8_t *)ends[r].text,
	    strlen(ends[r].text));
	print_field(name, "payload", plain, len);
	print_field(name, "wire", es.b.txb.data, n);
	print_end_words(name, &ends[r]);
}

/* The value of NAME.FIELD. */
static const char *
get2(const struct block *b, const char *name, const char *field)
{
	char label[64];

	snprintf(label, sizeof(label), "%s.%s", name, field);
	return get(b, label);
}

/* Is word one of the words of list? */
static int
has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p;

	for (p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * The streams of stateN into es: S, A, T (our input's length or size;
 * T = S: our input has ended), R written of what we opened (peer_data),
 * the peer's CLOSE (peer_close); the flags as secchat derives them.
 */
static void
set_state(const struct block *b, const char *name)
{
	const char *t = get2(b, name, "T"), *flags = get2(b, name, "flags");
	uint64_t r = strtoull(get2(b, name, "R"), NULL, 10);

	memset(&es.st, 0, sizeof(es.st));
	es.st.sealed = strtoull(get2(b, name, "S"), NULL, 10);
	es.st.acked = strtoull(get2(b, name, "A"), NULL, 10);
	es.rep.in_size = strcmp(t, "-") == 0 ? -1 : strtoll(t, NULL, 10);
	es.st.closed = es.rep.in_size >= 0 &&
	    (uint64_t)es.rep.in_size == es.st.sealed;
	written_begin(&es.b.wr, 0, -1);
	written_add(&es.b.wr, r, r);
	es.c.recv_bytes = has_word(flags, "peer_data") ? r : 0;
	es.st.peer_closed = has_word(flags, "peer_close");
	printf("%s.S = %llu\n%s.A = %llu\n%s.T = %s\n%s.R = %llu\n", name,
	    (unsigned long long)es.st.sealed, name,
	    (unsigned long long)es.st.acked, name, t, name,
	    (unsigned long long)written_count(&es.b.wr));
	printf("%s.flags =%s%s%s%s%s\n", name,
	    ours_complete(&es) ? " ours_complete" : "",
	    es.c.recv_bytes > 0 ? " peer_data" : "",
	    es.st.peer_closed ? " peer_close" : "",
	    peers_complete(&es) ? " peers_complete" : "",
	    ours_complete(&es) || es.c.recv_bytes > 0 || es.st.peer_closed ?
	    "" : " -");
}

/*
 * The session's role while it waits to be resumed (rejoin_fn): no
 * connection comes; lost_gone: the listener answered NO_SESSION.
 */
static int lost_gone;

static void
lost_rejoin(void *arg, const struct resumable *rm, int64_t until,
    struct rejoin *j)
{
	(void)arg;
	(void)rm;
	(void)until;
	j->gone = lost_gone;
}

/*
 * The connection lost, and not resumed (section 9.4), as secchat finds
 * it: lostK's cause and END part.  1: silence with -L 45, a window of
 * 5 min that runs out; 2: the peer's end of stream, and the listener no
 * longer holds the session; 3: a reset, a session that cannot be resumed
 * (window 0: no END part); 4: silence with -L 90, a window of 90 s that
 * runs out.  A session that may be resumed waits in resume_wait, with
 * its window already over (lost_at moved back).
 */
static int
lost_line(int k)
{
	static const struct {
		unsigned loss, window;
		int	 eof, error, gone;
	} cause[] = { { 0, 0, 0, 0, 0 }, { 45, 300, 0, 0, 0 },
	    { 0, 300, 1, 0, 1 }, { 0, 0, 0, ECONNRESET, 0 },
	    { 90, 90, 0, 0, 0 } };
	sigset_t open;
	int status;

	if (k < 1 || k > 4)
		errx(1, "no lost%d in this kat", k);
	es.c.rx_state = RX_OPEN;
	es.c.rx_eof = cause[k].eof;
	es.c.rx_errno = cause[k].error;
	es.c.last_heard = 0;
	memset(&es.end, 0, sizeof(es.end));	/* we sent no END */
	es.rejoin = lost_rejoin;
	es.rm.window = cause[k].window;
	es.lost_end[0] = '\0';
	lost_gone = cause[k].gone;
	if (cause[k].loss == 0)
		status = session_over(&es);
	else {
		side_opt.loss = cause[k].loss;
		status = check_silence(&es, secs_ms(cause[k].loss));
	}
	if (status == RESUMING) {
		es.lost_at = now_ms() - secs_ms(cause[k].window);
		if (sigprocmask(SIG_BLOCK, NULL, &open) == -1)
			err(1, "sigprocmask");
		status = resume_wait(&es, &open);
	}
	return status;
}

/* A stateN block: the state, then each line and its status. */
static void
kat_state(const struct block *b, const char *name)
{
	const char *what;
	size_t n;
	int i, k, status;

	set_state(b, name);
	for (i = 0; i < b->n; i++) {
		what = b->f[i].name + strlen(name);
		n = strlen(what);
		if (n < 5 || strcmp(what + n - 5, ".line") != 0)
			continue;
		if (sscanf(what, ".end%d.", &k) == 1 && k >= 1 &&
		    k <= END_OTHER)
			status = end_line(&ends[k], 0);
		else if (sscanf(what, ".lost%d.", &k) == 1)
			status = lost_line(k);
		else
			continue;
		printf("%s = %s\n", b->f[i].name, es.rep.last);
		printf("%.*s.status = %d\n", (int)(strlen(b->f[i].name) - 5),
		    b->f[i].name, status);
	}
}

/* amountN and amountN.text: the amount as secchat shows it (put_size). */
static void
kat_amounts(const struct block *b)
{
	char text[64];
	uint64_t n;
	int i;

	for (i = 0; i < b->n; i++) {
		if (strchr(b->f[i].name, '.') != NULL)
			continue;
		n = strtoull(b->f[i].value, NULL, 10);
		put_size(text, n);
		printf("%s = %llu\n%s.text = %s\n", b->f[i].name,
		    (unsigned long long)n, b->f[i].name, text);
	}
}

/*
 * secchat3-end.txt: the ENDs under one secret, their words in a chat and
 * as a phrase, the lines of 9.3 and 9.4 for stream states, the amounts;
 * every line made by secchat's own functions on a session of its own.
 */
static void
kat_end3(FILE *fp)
{
	struct block b;
	uint8_t secret[SECRET_LEN], key[KEY_LEN], iv[IV_LEN];
	char name[32];
	struct end other;

	side_begin(&es);
	if (!read_block(fp, &b) ||
	    unhex(get(&b, "secret"), secret, SECRET_LEN) != SECRET_LEN)
		errx(1, "no secret");
	derive_key_iv(secret, key, iv);
	print_hex("secret", secret, SECRET_LEN);
	print_hex("key", key, KEY_LEN);
	print_hex("iv", iv, IV_LEN);
	while (read_block(fp, &b)) {
		printf("\n");
		snprintf(name, sizeof(name), "%.*s",
		    (int)strcspn(b.f[0].name, "."), b.f[0].name);
		memset(&other, 0, sizeof(other));
		other.reason = atoi(name + 3);
		if (strncmp(name, "end", 3) == 0 && other.reason >= 1 &&
		    other.reason <= END_OTHER)
			kat_end_record(&b, other.reason, secret);
		else if (strncmp(name, "end", 3) == 0)
			print_end_words(name, &other);
		else if (strncmp(name, "state", 5) == 0)
			kat_state(&b, name);
		else if (strncmp(name, "amount", 6) == 0)
			kat_amounts(&b);
		else
			errx(1, "unexpected block %s", name);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	session_free(&es);
}

/*
 * x25519-refused.txt: each share as a REKEY's E for the vector's receive
 * key (recv_keys_use: section 5.3's checks 3 and 4); a KEY with it must be
 * refused as public-equivalent exactly when the REKEY is.
 */
static void
kat_x25519(FILE *fp)
{
	struct block b;
	struct recv_keys rk;
	struct peer_keys pk;
	uint8_t priv[X25519_LEN], pub[X25519_LEN], payload[REKEY_LEN];
	uint8_t dh[X25519_LEN];
	enum rk_result res;
	uint32_t index;
	int i;

	if (!read_block(fp, &b) ||
	    unhex(get(&b, "private"), priv, X25519_LEN) != X25519_LEN)
		errx(1, "no private key");
	memset(&rk, 0, sizeof(rk));
	recv_keys_add(&rk, x25519_from_private(priv, pub));
	print_hex("private", priv, X25519_LEN);
	print_hex("public", pub, X25519_LEN);
	OPENSSL_cleanse(priv, sizeof(priv));
	printf("\n");
	while (read_block(fp, &b))
		for (i = 0; i < b.n; i++) {
			if (strchr(b.f[i].name, '.') != NULL)
				continue;
			put_u32(payload, 0);
			if (unhex(b.f[i].value, payload + INDEX_LEN, X25519_LEN)
			    != X25519_LEN)
				errx(1, "%s is not 32 bytes", b.f[i].name);
			print_hex(b.f[i].name, payload + INDEX_LEN, X25519_LEN);
			res = recv_keys_use(&rk, payload, dh, &index);
			memset(&pk, 0, sizeof(pk));
			if ((peer_keys_add(&pk, payload + INDEX_LEN) == -2) !=
			    (res == RK_PUBLIC))
				fail("KEY and REKEY disagree on a share");
			printf("%s.result = %s\n", b.f[i].name,
			    res == RK_PUBLIC ? "refused: public-equivalent" :
			    res == RK_LOW_ORDER ? "refused: DH zero" :
			    res == RK_OK ? "accepted" : "refused: other");
			if (res == RK_OK)
				print_field(b.f[i].name, "dh", dh, X25519_LEN);
		}
	recv_keys_free(&rk);
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
		errx(2, "usage: kat pbkdf2|spake2|handshake3|session3|refusals3|"
		    "end3|x25519|serving FILE");
	if ((fp = fopen(argv[2], "r")) == NULL)
		err(1, "%s", argv[2]);
	if (strcmp(argv[1], "pbkdf2") == 0)
		kat_pbkdf2(fp);
	else if (strcmp(argv[1], "spake2") == 0)
		kat_spake2(fp);
	else if (strcmp(argv[1], "handshake3") == 0)
		kat_handshake3(fp);
	else if (strcmp(argv[1], "session3") == 0)
		kat_session3(fp);
	else if (strcmp(argv[1], "end3") == 0)
		kat_end3(fp);
	else if (strcmp(argv[1], "x25519") == 0)
		kat_x25519(fp);
	else if (strcmp(argv[1], "refusals3") == 0)
		kat_refusals3(fp);
	else if (strcmp(argv[1], "serving") == 0)
		kat_serving(fp);
	else
		errx(2, "unknown vector kind %s", argv[1]);
	fclose(fp);
	return failures != 0;
}
