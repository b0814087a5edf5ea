// Known-answer vectors for authmigrate.credentials.aspnet, made by the npm package
// aspnetcore-identity-password-hasher (a port of ASP.NET Core Identity's PasswordHasher.cs),
// plus one hash produced by ASP.NET Core Identity 8 itself (V3, HMAC-SHA512, 100,000
// iterations: the .NET 7+ default, which the npm port cannot write).
//
// Run:  (cd /tmp/aspnet && npm install aspnetcore-identity-password-hasher)
//       NODE_PATH=/tmp/aspnet/node_modules node tests/vectors/gen_aspnet.js > tests/vectors/aspnet.json
'use strict';

const { PasswordHasher, PasswordHasherCompatibilityMode, PasswordVerificationResult } =
  require('aspnetcore-identity-password-hasher/build/PasswordHasher');

const PASSWORDS = ['password', 'correct horse battery staple', 'pässwörd-ünicode-€', ''];
const WRONG = ['Password', 'password ', 'wrong'];

async function vector(scheme, hasher, password, source) {
  const stored = await hasher.hashPassword(password);
  const checks = [];
  for (const p of [password, ...WRONG.filter((w) => w !== password)]) {
    const result = await new PasswordHasher().verifyHashedPassword(stored, p);
    checks.push({ password: p, ok: result !== PasswordVerificationResult.Failed });
  }
  return { scheme, stored, import: {}, checks, source };
}

async function main() {
  const vectors = [];
  const pkg = 'aspnetcore-identity-password-hasher 1.0.1';
  for (const p of PASSWORDS) {
    vectors.push(await vector('aspnet_identity_v2',
      new PasswordHasher(1000, PasswordHasherCompatibilityMode.IdentityV2), p,
      `${pkg} hashPasswordV2 (PBKDF2-SHA1 x1000)`));
    vectors.push(await vector('aspnet_identity_v3',
      new PasswordHasher(1000, PasswordHasherCompatibilityMode.IdentityV3), p,
      `${pkg} hashPasswordV3 (PBKDF2-SHA256 x1000)`));
    vectors.push(await vector('aspnet_identity_v3',
      new PasswordHasher(10000, PasswordHasherCompatibilityMode.IdentityV3), p,
      `${pkg} hashPasswordV3 (PBKDF2-SHA256 x10000, the ASP.NET Core 2-6 default)`));
  }
  vectors.push({
    scheme: 'aspnet_identity_v3',
    stored: 'AQAAAAIAAYagAAAAENoVftXbReMcFkOwzlfLFgFkx1tZ2PVoFwKaz/7UP6r5rlrymlHMFjMgowJCZl+6YA==',
    import: {},
    checks: [{ password: 'Test123$', ok: true }, { password: 'Test123', ok: false }],
    source: 'ASP.NET Core Identity 8 PasswordHasher (V3, HMAC-SHA512, 100000), a public seed hash',
  });
  process.stdout.write(JSON.stringify({ generator: 'tests/vectors/gen_aspnet.js', vectors }, null, 1) + '\n');
}

main();
