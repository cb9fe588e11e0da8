package io.sparkpods.client;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns a PEM private key into PKCS#8 PEM, the only form grpc-java's TLS (Netty without
 * BouncyCastle) reads. SEC 1 "EC PRIVATE KEY" (what Go's crypto/x509, servicepki and
 * cert-manager's default encoding write for ECDSA keys) and PKCS#1 "RSA PRIVATE KEY" are
 * wrapped in a PKCS#8 PrivateKeyInfo; "PRIVATE KEY" passes through.
 */
final class PrivateKeyPem {
  private static final Pattern PEM =
      Pattern.compile("-----BEGIN ([A-Z ]*)PRIVATE KEY-----\\s*([A-Za-z0-9+/=\\s]+?)-----END \\1PRIVATE KEY-----");
  // id-ecPublicKey (1.2.840.10045.2.1) and rsaEncryption (1.2.840.113549.1.1.1).
  private static final byte[] EC_PUBLIC_KEY = {0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};
  private static final byte[] RSA_ENCRYPTION =
      {0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01};
  private static final byte[] DER_NULL = {0x05, 0x00};
  private static final byte[] VERSION_0 = {0x02, 0x01, 0x00};

  private PrivateKeyPem() {}

  static byte[] toPkcs8(byte[] pem, String name) throws IOException {
    Matcher m = PEM.matcher(new String(pem, StandardCharsets.US_ASCII));
    if (!m.find()) {
      throw new IOException(name + " holds no PEM private key");
    }
    String kind = m.group(1).trim();
    byte[] der = Base64.getMimeDecoder().decode(m.group(2));
    byte[] pkcs8;
    switch (kind) {
      case "":
        return pem;
      case "EC":
        pkcs8 = tlv(0x30, VERSION_0, tlv(0x30, EC_PUBLIC_KEY, curveOf(der, name)), tlv(0x04, der));
        break;
      case "RSA":
        pkcs8 = tlv(0x30, VERSION_0, tlv(0x30, RSA_ENCRYPTION, DER_NULL), tlv(0x04, der));
        break;
      default:
        throw new IOException(name + ": unsupported private key type \"" + kind + " PRIVATE KEY\"; use PKCS#8");
    }
    String body = Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(pkcs8);
    return ("-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n").getBytes(StandardCharsets.US_ASCII);
  }

  /**
   * The named curve's OID (tag, length and value) from a SEC 1 ECPrivateKey: SEQUENCE { version,
   * privateKey OCTET STRING, [0] parameters, [1] publicKey }.
   */
  private static byte[] curveOf(byte[] sec1, String name) throws IOException {
    int[] seq = element(sec1, 0, name);
    for (int at = seq[1]; at < seq[2]; ) {
      int[] e = element(sec1, at, name);
      if (sec1[at] == (byte) 0xa0) {
        int[] oid = element(sec1, e[1], name);
        if (sec1[e[1]] != 0x06) {
          break;
        }
        byte[] out = new byte[oid[2] - e[1]];
        System.arraycopy(sec1, e[1], out, 0, out.length);
        return out;
      }
      at = e[2];
    }
    throw new IOException(name + ": the EC private key does not name its curve; use PKCS#8");
  }

  /** The DER element at {@code at}: {tag offset, content start, content end}. */
  private static int[] element(byte[] der, int at, String name) throws IOException {
    if (at + 2 > der.length) {
      throw new IOException(name + ": malformed private key");
    }
    int len = der[at + 1] & 0xff;
    int start = at + 2;
    if (len > 0x80) {
      int n = len - 0x80;
      if (n > 3 || start + n > der.length) {
        throw new IOException(name + ": malformed private key");
      }
      len = 0;
      for (int i = 0; i < n; i++) {
        len = len << 8 | (der[start + i] & 0xff);
      }
      start += n;
    } else if (len == 0x80) {
      throw new IOException(name + ": malformed private key");
    }
    if (start + len > der.length) {
      throw new IOException(name + ": malformed private key");
    }
    return new int[] {at, start, start + len};
  }

  private static byte[] tlv(int tag, byte[]... parts) {
    ByteArrayOutputStream content = new ByteArrayOutputStream();
    for (byte[] p : parts) {
      content.writeBytes(p);
    }
    int len = content.size();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(tag);
    if (len < 0x80) {
      out.write(len);
    } else if (len < 0x100) {
      out.write(0x81);
      out.write(len);
    } else if (len < 0x10000) {
      out.write(0x82);
      out.write(len >> 8);
      out.write(len);
    } else {
      out.write(0x83);
      out.write(len >> 16);
      out.write(len >> 8);
      out.write(len);
    }
    out.writeBytes(content.toByteArray());
    return out.toByteArray();
  }
}
