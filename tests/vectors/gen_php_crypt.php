<?php
/*
 * Known-answer vectors made by PHP's own password_hash() and crypt(): bcrypt $2y$ (including
 * passwords longer than 72 bytes, which PHP silently cuts to their first 72), $2a$, $2b$,
 * SHA-crypt $5$/$6$ (with and without an explicit rounds=), MD5-crypt $1$, and for the Rails
 * schemes: Devise's bcrypt over password + pepper (Devise::Encryptor.digest) and Authlogic's
 * Sha512 provider (20 x hexdigest(sha512) over password + salt).
 *
 * Run:  php tests/vectors/gen_php_crypt.php > tests/vectors/php_crypt.json
 */

function salt22(): string {
    $alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    $s = '';
    for ($i = 0; $i < 22; $i++) { $s .= $alphabet[random_int(0, 63)]; }
    // The last character carries only 2 bits: keep it canonical.
    return substr($s, 0, 21) . '.Oeu'[random_int(0, 3)];
}

function salt16(): string {
    $alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    $s = '';
    for ($i = 0; $i < 16; $i++) { $s .= $alphabet[random_int(0, 63)]; }
    return $s;
}

function checks(string $stored, string $password, array $wrong, callable $check): array {
    $out = [['password' => $password, 'ok' => $check($password, $stored)]];
    foreach ($wrong as $w) {
        if ($w !== $password) { $out[] = ['password' => $w, 'ok' => $check($w, $stored)]; }
    }
    return $out;
}

$long = str_repeat('0123456789', 10);              // 100 bytes
$long_utf8 = str_repeat('é', 40) . 'tail';         // 84 bytes, the cut falls mid-string
$passwords = ['password', 'correct horse battery staple', 'pässwörd-ünicode-€', ''];
$wrong = ['Password', 'password ', 'wrong'];
$crypt_check = fn(string $p, string $h): bool => hash_equals($h, crypt($p, $h));
$vectors = [];

foreach (array_merge($passwords, [$long, $long_utf8]) as $p) {
    $h = password_hash($p, PASSWORD_BCRYPT, ['cost' => 4]);
    $w = $wrong;
    if (strlen($p) > 72) {
        // Same first 72 bytes: PHP says true. One byte changed inside them: false.
        $w = [substr($p, 0, 72) . 'different tail', substr($p, 0, 70), 'X' . preg_replace('/^./u', '', $p)];
    }
    $vectors[] = ['scheme' => 'bcrypt', 'stored' => $h, 'import' => (object)[],
        'checks' => checks($h, $p, $w, fn($p, $h) => password_verify($p, $h)),
        'source' => 'PHP ' . PHP_VERSION . ' password_hash(PASSWORD_BCRYPT, cost 4)'];
}
foreach (['$2a$', '$2b$'] as $ident) {
    foreach (['password', $long] as $p) {
        $h = crypt($p, $ident . '04$' . salt22());
        $vectors[] = ['scheme' => 'bcrypt', 'stored' => $h, 'import' => (object)[],
            'checks' => checks($h, $p, $wrong, $crypt_check),
            'source' => 'PHP ' . PHP_VERSION . " crypt() $ident"];
    }
}
foreach ($passwords as $p) {
    foreach ([['sha256_crypt', '$5$'], ['sha512_crypt', '$6$'], ['md5_crypt', '$1$']] as [$scheme, $ident]) {
        $salt = $scheme === 'md5_crypt' ? substr(salt16(), 0, 8) : salt16();
        $configs = [$ident . $salt . '$'];
        if ($scheme !== 'md5_crypt') { $configs[] = $ident . 'rounds=1000$' . $salt . '$'; }
        foreach ($configs as $config) {
            $h = crypt($p, $config);
            $vectors[] = ['scheme' => $scheme, 'stored' => $h, 'import' => (object)[],
                'checks' => checks($h, $p, $wrong, $crypt_check),
                'source' => 'PHP ' . PHP_VERSION . " crypt() $ident"];
        }
    }
}

// Devise::Encryptor.digest: BCrypt::Password.create("#{password}#{pepper}") ($2a$).
$pepper = 'devise-test-pepper-not-a-real-one-0123456789abcdef';
foreach (array_merge($passwords, [$long]) as $p) {
    $h = crypt($p . $pepper, '$2a$04$' . salt22());
    $vectors[] = ['scheme' => 'devise_bcrypt', 'stored' => $h,
        'import' => ['params' => ['key_id' => 'devise_pepper']],
        'keyring' => ['devise_pepper' => $pepper],
        'checks' => checks($h, $p, $wrong, fn($p, $h) => hash_equals($h, crypt($p . $pepper, $h))),
        'source' => 'PHP crypt() restating Devise::Encryptor.digest (password + pepper, bcrypt $2a$)'];
}

// Authlogic::CryptoProviders::Sha512.encrypt(password, salt): join, then 20 x hexdigest.
$authlogic = function (string $p, string $salt): string {
    $d = $p . $salt;
    for ($i = 0; $i < 20; $i++) { $d = hash('sha512', $d); }
    return $d;
};
$salts = ['7e3041ebc2fc05a40c60028e2c4901a81035d3cd', 'kC8ZGMGMqmJQ3yS-qNvc', ''];
foreach ($salts as $i => $salt) {
    $p = $passwords[$i % count($passwords)];
    $h = $authlogic($p, $salt);
    $vectors[] = ['scheme' => 'authlogic_sha512', 'stored' => $h,
        'import' => ['salt' => $salt],
        'checks' => checks($h, $p, $wrong, fn($p, $h) => hash_equals($h, $authlogic($p, $salt))),
        'source' => 'PHP restating Authlogic::CryptoProviders::Sha512 (20 stretches)'];
}
// Authlogic's own test vector (test/crypto_provider_test/sha512_test.rb).
$vectors[] = ['scheme' => 'authlogic_sha512',
    'stored' => '9508ba2964d65501aa1d7798e8f250b35f50fadb870871f2bc1f390872e8456e785633d06e17ffa4984a04cfa1a0e1ec29f15c31187b991e591393c6c0bffb61',
    'import' => ['salt' => '7e3041ebc2fc05a40c60028e2c4901a81035d3cd'],
    'checks' => [['password' => 'test', 'ok' => true], ['password' => 'Test', 'ok' => false]],
    'source' => "authlogic test/crypto_provider_test/sha512_test.rb test_encrypt"];

echo json_encode(['generator' => 'tests/vectors/gen_php_crypt.php', 'php' => PHP_VERSION,
    'vectors' => $vectors], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
