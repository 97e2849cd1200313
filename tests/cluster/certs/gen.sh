#!/bin/sh
# The test cluster's fixed certificates (test use only; the keys are public). The CA (ca.key, ca.crt)
# is made once and kept, so that certificates can be added later without replacing it. Only missing
# files are made: delete one (or ca.key and ca.crt, to start over) to make it again. The leaves:
#   server.crt          the API server's serving certificate (127.0.0.1, localhost, kubernetes.*)
#   kubelet-client.crt  the API server's client certificate towards kubelets
#                       (--kubelet-client-certificate; CN kube-apiserver-kubelet-client, O system:masters)
#   kubelet.crt         a kubelet serving certificate for 127.0.0.1/localhost/node-1
#                       (--tls-cert-file; the API server verifies it with --kubelet-certificate-authority)
#   stranger.crt        a self-signed kubelet client certificate from no known CA (tests of refusal)
set -eu
cd "$(dirname "$0")"
if [ ! -f ca.key ]; then
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 36500 -subj "/CN=kentledge-testcluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi
# issue NAME SUBJECT EXTENSIONS
issue() {
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 36500 -sha256 \
    -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}
[ -f server.crt ] || issue server "/CN=kube-apiserver" \
  "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
[ -f kubelet-client.crt ] || issue kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
[ -f kubelet.crt ] || issue kubelet "/CN=node-1" \
  "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:node-1"
[ -f stranger.crt ] || {
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out stranger.key
openssl req -x509 -new -key stranger.key -sha256 -days 36500 -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=clientAuth" -out stranger.crt
}
rm -f ca.srl
