// Command conformance renders the cases in cases.json with Go's text/template and sprig,
// configured the way ESO configures them (missingkey=error, sprig without env/expandenv,
// ESO's toYaml/fromYaml and pkcs12 helpers), and writes golden.json. The Rust engine's
// tests compare their output with it byte for byte.
//
// Regenerate after adding cases: (cd plugins/gotemplate/conformance && go run .)
package main

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/lestrrat-go/jwx/v2/jwk"
	gopkcs12 "software.sslmate.com/src/go-pkcs12"
	"sigs.k8s.io/yaml"
)

type testCase struct {
	Name     string            `json:"name"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data"`
	DataB64  map[string]string `json:"data_b64"`
	Left     string            `json:"left"`
	Right    string            `json:"right"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func funcs() template.FuncMap {
	m := sprig.TxtFuncMap()
	delete(m, "env")
	delete(m, "expandenv")
	m["toYaml"] = func(v any) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	m["fromYaml"] = func(s string) map[string]any {
		out := map[string]any{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	m["pkcs12keyPass"] = pkcs12keyPass
	m["pkcs12key"] = func(in string) (string, error) { return pkcs12keyPass("", in) }
	m["pkcs12certPass"] = pkcs12certPass
	m["pkcs12cert"] = func(in string) (string, error) { return pkcs12certPass("", in) }
	m["jwkPublicKeyPem"] = jwkPublicKeyPem
	m["jwkPrivateKeyPem"] = jwkPrivateKeyPem
	m["rsaDecrypt"] = rsaDecrypt
	m["certSANs"] = certSANs
	m["pemToPkcs12"] = func(cert, key string) (string, error) { return pemToPkcs12(cert, key, "", false) }
	m["pemToPkcs12Pass"] = func(cert, key, pass string) (string, error) { return pemToPkcs12(cert, key, pass, false) }
	m["fullPemToPkcs12"] = func(cert, key string) (string, error) { return pemToPkcs12(cert, key, "", true) }
	m["fullPemToPkcs12Pass"] = func(cert, key, pass string) (string, error) { return pemToPkcs12(cert, key, pass, true) }
	m["pemTruststoreToPKCS12"] = func(cert string) (string, error) { return truststore(cert, "") }
	m["pemTruststoreToPKCS12Pass"] = truststore
	return m
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for len(b) > 0 {
		block, rest := pem.Decode(b)
		if block == nil {
			break
		}
		b = rest
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func pemToPkcs12(cert, key, pass string, full bool) (string, error) {
	certs, err := parseCerts([]byte(cert))
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode([]byte(key))
	k, err := parsePrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	var cas []*x509.Certificate
	if full {
		cas = certs[1:]
	}
	pfx, err := gopkcs12.Modern.Encode(k, certs[0], cas, pass)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pfx), nil
}

func truststore(cert, pass string) (string, error) {
	certs, err := parseCerts([]byte(cert))
	if err != nil {
		return "", err
	}
	pfx, err := gopkcs12.Modern.EncodeTrustStore(certs, pass)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pfx), nil
}

func jwkPublicKeyPem(j string) (string, error) {
	k, err := jwk.ParseKey([]byte(j))
	if err != nil {
		return "", err
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func jwkPrivateKeyPem(j string) (string, error) {
	k, err := jwk.ParseKey([]byte(j))
	if err != nil {
		return "", err
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func parsePrivateKey(b []byte) (any, error) {
	if k, err := x509.ParsePKCS1PrivateKey(b); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(b); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(b); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("unable to parse private key type")
}

func rsaDecrypt(scheme, hash, in, key string) (string, error) {
	switch scheme {
	case "None":
		return in, nil
	case "RSA-OAEP":
		block, _ := pem.Decode([]byte(key))
		if block == nil {
			return "", fmt.Errorf("failed to decode PEM block")
		}
		parsed, err := parsePrivateKey(block.Bytes)
		if err != nil {
			return "", fmt.Errorf("could not parse private key: %v", err)
		}
		rk, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return "", fmt.Errorf("could not parse RSA private key")
		}
		h := sha256.New()
		switch hash {
		case "SHA1":
			h = crypto.SHA1.New()
		case "SHA512":
			h = sha512.New()
		}
		out, err := rsa.DecryptOAEP(h, nil, rk, []byte(in), nil)
		if err != nil {
			return "", fmt.Errorf("error decrypting data with RSA: %v", err)
		}
		return string(out), nil
	default:
		return "", fmt.Errorf("decryption scheme %v is not supported", scheme)
	}
}

func certSANs(input string) ([]string, error) {
	if i := strings.Index(input, "-----BEGIN"); i >= 0 {
		input = input[i:]
	}
	block, _ := pem.Decode([]byte(input))
	if block == nil {
		return nil, fmt.Errorf("failed to decode PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("failed to parse certificate: %w", err)
	}
	sans := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		sans = append(sans, u.String())
	}
	return sans, nil
}

func pkcs12keyPass(pass, input string) (string, error) {
	key, _, _, err := gopkcs12.DecodeChain([]byte(input), pass)
	if err != nil {
		return "", fmt.Errorf("unable to decode pkcs12 with password: %s", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// The leaf, then the CA certificates in file order (the cases' files are already ordered).
func pkcs12certPass(pass, input string) (string, error) {
	_, cert, cas, err := gopkcs12.DecodeChain([]byte(input), pass)
	if err != nil {
		return "", fmt.Errorf("unable to decode pkcs12 certificate with password: %s", err)
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	for _, ca := range cas {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	}
	return buf.String(), nil
}

func render(c testCase) result {
	data := map[string]string{}
	for k, v := range c.Data {
		data[k] = v
	}
	for k, v := range c.DataB64 {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			panic(fmt.Sprintf("case %s: data_b64 %s: %v", c.Name, k, err))
		}
		data[k] = string(b)
	}
	t, err := template.New(c.Name).Option("missingkey=error").Funcs(funcs()).Delims(c.Left, c.Right).Parse(c.Template)
	if err != nil {
		msg := err.Error()
		return result{Error: &msg}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		msg := err.Error()
		return result{Error: &msg}
	}
	out := buf.String()
	return result{Output: &out}
}

func main() {
	raw, err := os.ReadFile("cases.json")
	if err != nil {
		panic(err)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	golden := map[string]result{}
	names := []string{}
	for _, c := range cases {
		if _, dup := golden[c.Name]; dup {
			panic("duplicate case " + c.Name)
		}
		golden[c.Name] = render(c)
		names = append(names, c.Name)
	}
	sort.Strings(names)
	out, err := json.MarshalIndent(golden, "", "  ")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile("golden.json", append(out, '\n'), 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("%d cases rendered with %s\n", len(names), "text/template + sprig v3")
}
