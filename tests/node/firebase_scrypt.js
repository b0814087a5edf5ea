// Runs the npm package firebase-scrypt (a Node port of Firebase's own scrypt, the algorithm
// behind Firebase Auth's password hashes) for tests/test_exports_firebase_node.py.
//
// stdin: {"op": "hash", "items": [{params, password, salt}]}   -> stdout: ["<hash b64>", ...]
//        {"op": "verify", "items": [{params, password, salt, hash}]} -> stdout: [true|false, ...]
// params: {memCost, rounds, saltSeparator, signerKey} (numbers; base64 strings), as Firebase's
// console shows a project's password hash parameters.
const { FirebaseScrypt } = require('firebase-scrypt')

async function main () {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const out = []
  for (const item of request.items) {
    const fb = new FirebaseScrypt(item.params)
    if (request.op === 'hash') {
      out.push(await fb.hash(item.password, item.salt))
    } else {
      out.push(await fb.verify(item.password, item.salt, item.hash))
    }
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  process.stderr.write(String(err && err.message ? err.message : err) + '\n')
  process.exit(1)
})
