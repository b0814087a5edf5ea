// Known-answer vectors for authmigrate's firebase_scrypt scheme, made by the npm package
// `firebase-scrypt` (github.com/xeewi/firebase-scrypt, a Node port of firebase/scrypt, the
// algorithm behind Firebase Auth's exported password hashes).
//
//   mkdir -p /tmp/fb && cd /tmp/fb && npm init -y && npm install firebase-scrypt@2.2.0
//   NODE_PATH=/tmp/fb/node_modules node tests/vectors/gen_firebase.js > tests/vectors/firebase.json
//
// Each vector: the exported passwordHash and salt (base64, as `firebase auth:export` writes
// them), the project's hash parameters as import params, a test-only signer key in the
// keyring, and the package's own verify() answer for right and wrong passwords.
const { FirebaseScrypt } = require('firebase-scrypt')
const crypto = require('crypto')

const projects = [
  // Firebase's default parameters (console: rounds 8, mem_cost 14, separator "Bw==")
  { memCost: 14, rounds: 8, saltSeparator: 'Bw==' },
  // a smaller project setting, to cover other parameters cheaply
  { memCost: 10, rounds: 4, saltSeparator: 'AQID' },
]
const passwords = ['password', 'correct horse battery staple', 'p\u00e4ssw\u00f6rd\u20ac', 'a&b"<c>\'d']
const wrong = ['Password', 'password ']

async function main () {
  const vectors = []
  let n = 0
  for (const [p, params] of projects.entries()) {
    // deterministic test-only signer keys (64 bytes, like a project's), never a real one
    const signerKey = crypto.createHash('sha512').update('authmigrate test signer key ' + p).digest('base64')
    const fb = new FirebaseScrypt({ ...params, signerKey })
    for (const pw of passwords) {
      const salt = crypto.createHash('sha256').update('salt ' + n++).digest().subarray(0, 16).toString('base64')
      const hash = await fb.hash(pw, salt)
      const checks = [{ password: pw, ok: await fb.verify(pw, salt, hash) }]
      for (const w of wrong) {
        checks.push({ password: w, ok: await fb.verify(w, salt, hash) })
      }
      vectors.push({
        scheme: 'firebase_scrypt',
        stored: hash,
        import: {
          salt,
          params: { key_id: 'fb_project', rounds: params.rounds, mem_cost: params.memCost, salt_separator: params.saltSeparator },
        },
        keyring: { fb_project: signerKey },
        checks,
        source: `firebase-scrypt ${require('firebase-scrypt/package.json').version} FirebaseScrypt.hash/verify`,
      })
    }
  }
  console.log(JSON.stringify({ generator: 'tests/vectors/gen_firebase.js', node: process.version, vectors }, null, 2))
}
main()
