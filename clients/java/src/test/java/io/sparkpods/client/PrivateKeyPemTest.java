package io.sparkpods.client;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import org.junit.Test;

/**
 * Checks that SEC 1 and PKCS#1 keys become the same keys in PKCS#8 as openssl's own conversion
 * (openssl pkcs8 -topk8) gives. The keys are throwaway test keys.
 */
public class PrivateKeyPemTest {
  private static final String EC_SEC1 =
      "-----BEGIN EC PRIVATE KEY-----\n" +
      "MHcCAQEEIHtBgw7N0c25TlI1twFZ2JWZBg19XLzSu3v1+iHPDfdboAoGCCqGSM49\n" +
      "AwEHoUQDQgAEI2a3Saqur8dw2xRe40NIi/LrR68zhtgFXnwCQXNbHmqcvu0tid98\n" +
      "dybeB6/QwNdN4a091nCLdk2xqj3Ke7vToQ==\n" +
      "-----END EC PRIVATE KEY-----\n";
  private static final String EC_PKCS8 =
      "-----BEGIN PRIVATE KEY-----\n" +
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQge0GDDs3RzblOUjW3\n" +
      "AVnYlZkGDX1cvNK7e/X6Ic8N91uhRANCAAQjZrdJqq6vx3DbFF7jQ0iL8utHrzOG\n" +
      "2AVefAJBc1seapy+7S2J33x3Jt4Hr9DA103hrT3WcIt2TbGqPcp7u9Oh\n" +
      "-----END PRIVATE KEY-----\n";
  private static final String RSA_PKCS1 =
      "-----BEGIN RSA PRIVATE KEY-----\n" +
      "MIICWwIBAAKBgQCXbw7xP9L2ujyA4/5btlY8HyiW0wfyYQxd9nY5Z4MqYe7LQSar\n" +
      "vOTR+il/vm21t57T/wpMPth54PmFT6FXiGC1aUYhNZRyEOE2xuMWYFp15v5Uxrcl\n" +
      "SVRu0cz8vYt+YJtuUfffyaD6ervLtRUs7dk17N5TmKSAZSvizVuW7jMRMQIDAQAB\n" +
      "AoGAXNEkXngZLULfHL0hxULQPk92yGMWhtg3BUywD+VDPvIBtDD9q9u+gHkNgI/O\n" +
      "nMesIRI8VJlcg++B4NT69jTP2NAG4/QRUk1aczzEEG+WO5v3m8VJnJOGsHLxqVBt\n" +
      "PxAzpNDNepakOpfd+yIsyF/hiBV89CrmAEYrqxpWZDC5lpUCQQDHzlyJyci6b8eE\n" +
      "O5m0+6jI7dsOjQTlNG2lAeqi9/SgEk2ihs+wzcCZbIH9m39OI9Gk0xSfE3tozB1d\n" +
      "2FdneGd7AkEAwgX9aSpwprhMpzgscOZEG5pbzGjM2huohyGALdHGP7MP+Ob2VhPv\n" +
      "0WlfeS93dhSKvIY8W0IdBIGq+XyQ2JE0QwJAQRTruYn7kxbD00Oinnv2j3RCjSvL\n" +
      "82ivajcEmY7QpK8xkIX+8qUiXhclBFl5DxfFur1ykxpCcXFDA4Vreu2SLwJAXTrJ\n" +
      "mLYG6WWXl6ZbXGiZA3Z5c9BL1uYBZeVIFTw+ea9OFnjMl3H/A24RrUaMrZWTUKFj\n" +
      "8SnkjZzNDhK3+whSxwJAE4FNws3M4yvX1Mm0mKIzLoNaooCiNXdTPkP1IBNCcMXN\n" +
      "+9nOjMyLqD5C8scMmpi8c9/4kQ4KRZbXdi0/LFa1LQ==\n" +
      "-----END RSA PRIVATE KEY-----\n";
  private static final String RSA_PKCS8 =
      "-----BEGIN PRIVATE KEY-----\n" +
      "MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBAJdvDvE/0va6PIDj\n" +
      "/lu2VjwfKJbTB/JhDF32djlngyph7stBJqu85NH6KX++bbW3ntP/Ckw+2Hng+YVP\n" +
      "oVeIYLVpRiE1lHIQ4TbG4xZgWnXm/lTGtyVJVG7RzPy9i35gm25R99/JoPp6u8u1\n" +
      "FSzt2TXs3lOYpIBlK+LNW5buMxExAgMBAAECgYBc0SReeBktQt8cvSHFQtA+T3bI\n" +
      "YxaG2DcFTLAP5UM+8gG0MP2r276AeQ2Aj86cx6whEjxUmVyD74Hg1Pr2NM/Y0Abj\n" +
      "9BFSTVpzPMQQb5Y7m/ebxUmck4awcvGpUG0/EDOk0M16lqQ6l937IizIX+GIFXz0\n" +
      "KuYARiurGlZkMLmWlQJBAMfOXInJyLpvx4Q7mbT7qMjt2w6NBOU0baUB6qL39KAS\n" +
      "TaKGz7DNwJlsgf2bf04j0aTTFJ8Te2jMHV3YV2d4Z3sCQQDCBf1pKnCmuEynOCxw\n" +
      "5kQbmlvMaMzaG6iHIYAt0cY/sw/45vZWE+/RaV95L3d2FIq8hjxbQh0Egar5fJDY\n" +
      "kTRDAkBBFOu5ifuTFsPTQ6Kee/aPdEKNK8vzaK9qNwSZjtCkrzGQhf7ypSJeFyUE\n" +
      "WXkPF8W6vXKTGkJxcUMDhWt67ZIvAkBdOsmYtgbpZZeXpltcaJkDdnlz0EvW5gFl\n" +
      "5UgVPD55r04WeMyXcf8DbhGtRoytlZNQoWPxKeSNnM0OErf7CFLHAkATgU3Czczj\n" +
      "K9fUybSYojMug1qigKI1d1M+Q/UgE0Jwxc372c6MzIuoPkLyxwyamLxz3/iRDgpF\n" +
      "ltd2LT8sVrUt\n" +
      "-----END PRIVATE KEY-----\n";

  private static PrivateKey parse(String algorithm, byte[] pem) throws Exception {
    String body = new String(pem, StandardCharsets.US_ASCII).replaceAll("-----[A-Z ]+-----", "");
    return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(body)));
  }

  @Test
  public void ecSec1BecomesPkcs8() throws Exception {
    ECPrivateKey got = (ECPrivateKey) parse("EC", PrivateKeyPem.toPkcs8(EC_SEC1.getBytes(StandardCharsets.US_ASCII), "ec.key"));
    ECPrivateKey want = (ECPrivateKey) parse("EC", EC_PKCS8.getBytes(StandardCharsets.US_ASCII));
    // The encodings differ (openssl drops the curve from the inner SEC 1 structure); the keys
    // do not.
    assertEquals(want.getS(), got.getS());
    assertEquals(want.getParams().getCurve(), got.getParams().getCurve());
  }

  @Test
  public void rsaPkcs1BecomesPkcs8() throws Exception {
    PrivateKey got = parse("RSA", PrivateKeyPem.toPkcs8(RSA_PKCS1.getBytes(StandardCharsets.US_ASCII), "rsa.key"));
    PrivateKey want = parse("RSA", RSA_PKCS8.getBytes(StandardCharsets.US_ASCII));
    assertArrayEquals(want.getEncoded(), got.getEncoded());
  }

  @Test
  public void pkcs8PassesThrough() throws Exception {
    byte[] pem = EC_PKCS8.getBytes(StandardCharsets.US_ASCII);
    assertArrayEquals(pem, PrivateKeyPem.toPkcs8(pem, "ec8.key"));
  }

  @Test
  public void notAKey() {
    assertThrows(IOException.class, () -> PrivateKeyPem.toPkcs8("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".getBytes(StandardCharsets.US_ASCII), "x.crt"));
  }
}
