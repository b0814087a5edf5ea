<?php
/*
 * Known-answer vectors for the shop/CMS schemes of authmigrate.credentials.shops, made with
 * PHP's own md5/sha1/hash/hash_hmac/password_hash/sodium_crypto_pwhash, the way each platform
 * computes them. Run:  php tests/vectors/gen_php.php > tests/vectors/php.json
 *
 * Each vector: scheme id, the value as the platform stores it, what import_hash needs (salt
 * column, params), the keyring for keyed schemes (test keys only), and "checks": passwords with
 * the answer of the platform's own check function (true/false).
 *
 * What each part reproduces, and where the code comes from:
 * - phpass $P$/$H$: Debian's `wordpress` package (6.1), /usr/share/wordpress/wp-includes/
 *   class-phpass.php, loaded as is: HashPassword / CheckPassword.
 * - WordPress 6.8 $wp$: wp_hash_password / wp_check_password of wp-includes/pluggable.php in
 *   WordPress 6.8 (trim + HMAC-SHA384 'wp-sha384' + base64 + password_hash bcrypt, '$wp' prefix;
 *   the check does not trim). Debian ships 6.1, so the two functions are restated below.
 * - Drupal 7: includes/password.inc (_password_crypt, user_hash_password, user_check_password,
 *   user_update_7000's 'U' + md5 upgrade), restated below.
 * - Magento 1: Mage_Core_Model_Encryption::getHash / validateHash (md5; sha256 for EE).
 * - Magento 2: Magento\Framework\Encryption\Encryptor::getHash / isValidHash / getArgonHash
 *   (2.4) and Customer\Console\Command\UpgradeHashAlgorithmCommand (how chains are written).
 * - PrestaShop 1.6: Tools::encrypt = md5(_COOKIE_KEY_ . $passwd).
 * - OpenCart 1.5-3: model/account/customer.php addCustomer (sha1 chain with a 9-char salt) and
 *   the login query's md5 fallback; Request::clean's htmlspecialchars(ENT_COMPAT).
 * - Joomla 1.5-2.5: JUserHelper::getCryptedPassword 'md5-hex' = md5($password . $salt).
 * - Shopware 5: Components\Password\Encoder\Sha256 (generateInternal), Md5, LegacyBackendMd5.
 * - Plain digests (scheme "digest"): one-line PHP recipes of home-grown shops, using PHP's
 *   md5/sha1/hash/hash_hmac/base64_encode/iconv.
 */

require_once '/usr/share/wordpress/wp-includes/class-phpass.php';

$PASSWORDS = [
    'password',
    'correct horse battery staple',
    "p\u{00e4}ssw\u{00f6}rd\u{20ac}",
    'a&b"<c>\'d',
    str_repeat('long-password-', 8),
];
$WRONG = ['Password', 'password ', ''];

function checks(callable $check, string $password): array
{
    global $WRONG;
    $out = [['password' => $password, 'ok' => $check($password)]];
    foreach ($WRONG as $w) {
        if ($w !== $password) {
            $out[] = ['password' => $w, 'ok' => $check($w)];
        }
    }
    return $out;
}

$vectors = [];
function add(string $scheme, string $stored, array $import, array $checks, string $source, array $keyring = []): void
{
    global $vectors;
    if (!$checks[0]['ok']) {
        fwrite(STDERR, "platform rejects its own hash: $scheme\n");
        exit(1);
    }
    $v = ['scheme' => $scheme, 'stored' => $stored, 'import' => (object) $import, 'checks' => $checks, 'source' => $source];
    if ($keyring) {
        $v['keyring'] = $keyring;
    }
    $vectors[] = $v;
}

// ---- phpass (WordPress < 6.8, phpBB $H$) -------------------------------------------------
$hasher = new PasswordHash(8, true);
foreach ($PASSWORDS as $pw) {
    $h = $hasher->HashPassword($pw);
    add('phpass', $h, [], checks(fn ($p) => $hasher->CheckPassword($p, $h), $pw), 'class-phpass.php HashPassword (WordPress, portable, 2^13)');
}
// phpBB writes $H$ with the same algorithm; CheckPassword accepts it.
$h = '$H$' . substr($hasher->HashPassword('phpbb-user'), 3, 9);
$h = substr($h, 0, 12);
$raw = md5(substr($h, 4, 8) . 'phpbb-user', true);
for ($i = 0; $i < (1 << 13); $i++) {
    $raw = md5($raw . 'phpbb-user', true);
}
// encode64 is a private method of PasswordHash; reach it through a subclass.
class PH extends PasswordHash { public function enc($in, $n) { return $this->encode64($in, $n); } }
$h .= (new PH(8, true))->enc($raw, 16);
add('phpass', $h, [], checks(fn ($p) => $hasher->CheckPassword($p, $h), 'phpbb-user'), 'class-phpass.php CheckPassword on a $H$ (phpBB) hash');

// ---- WordPress 6.8+ $wp$ -----------------------------------------------------------------
function wp68_hash_password(string $password): string
{
    $password = trim($password);
    $password_to_hash = base64_encode(hash_hmac('sha384', $password, 'wp-sha384', true));
    return '$wp' . password_hash($password_to_hash, PASSWORD_BCRYPT);
}
function wp68_check_password(string $password, string $hash): bool
{
    if (strlen($password) > 4096) {
        return false;
    }
    if (str_starts_with($hash, '$wp')) {
        $password_to_verify = base64_encode(hash_hmac('sha384', $password, 'wp-sha384', true));
        return password_verify($password_to_verify, substr($hash, 3));
    }
    return false;
}
foreach (array_merge($PASSWORDS, [' spaced out ', str_repeat('x', 100)]) as $pw) {
    $h = wp68_hash_password($pw);
    $c = checks(fn ($p) => wp68_check_password($p, $h), trim($pw));
    if ($pw !== trim($pw)) {
        $c[] = ['password' => $pw, 'ok' => wp68_check_password($pw, $h)];
    }
    if (strlen($pw) > 72) {
        $c[] = ['password' => substr($pw, 0, 72), 'ok' => wp68_check_password(substr($pw, 0, 72), $h)];
    }
    add('wordpress_bcrypt', $h, [], $c, 'WordPress 6.8 wp_hash_password / wp_check_password');
}

// ---- Drupal 7 ----------------------------------------------------------------------------
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function d7_base64_encode(string $input, int $count): string
{
    return (new PH(8, true))->enc($input, $count); // identical to _password_base64_encode
}
function d7_password_crypt(string $algo, string $password, string $setting)
{
    if (strlen($password) > 512) {
        return false;
    }
    $setting = substr($setting, 0, 12);
    if ($setting[0] != '$' || $setting[2] != '$') {
        return false;
    }
    $count_log2 = strpos(ITOA64, $setting[3]);
    if ($count_log2 < 7 || $count_log2 > 30) {
        return false;
    }
    $salt = substr($setting, 4, 8);
    if (strlen($salt) != 8) {
        return false;
    }
    $count = 1 << $count_log2;
    $hash = hash($algo, $salt . $password, true);
    do {
        $hash = hash($algo, $hash . $password, true);
    } while (--$count);
    $len = strlen($hash);
    $output = $setting . d7_base64_encode($hash, $len);
    $expected = 12 + ceil((8 * $len) / 6);
    return (strlen($output) == $expected) ? substr($output, 0, 55) : false;
}
function d7_check_password(string $password, string $pass): bool
{
    if (substr($pass, 0, 2) == 'U$') {
        $stored_hash = substr($pass, 1);
        $password = md5($password);
    } else {
        $stored_hash = $pass;
    }
    switch (substr($stored_hash, 0, 3)) {
        case '$S$':
            $hash = d7_password_crypt('sha512', $password, $stored_hash);
            break;
        case '$H$':
        case '$P$':
            $hash = d7_password_crypt('md5', $password, $stored_hash);
            break;
        default:
            return false;
    }
    return $hash && $stored_hash == $hash;
}
$d7salts = ['Dx1aR2bS', 'abc./XYZ', '9Qw3Er7T', 'zz..zz..', 'Mn0pQr5s'];
foreach ($PASSWORDS as $i => $pw) {
    $h = d7_password_crypt('sha512', $pw, '$S$D' . $d7salts[$i]); // D = 2^15, DRUPAL_HASH_COUNT
    add('drupal7', $h, [], checks(fn ($p) => d7_check_password($p, $h), $pw), 'Drupal 7 user_hash_password (sha512, 2^15)');
}
// user_update_7000: a Drupal 6 md5 becomes 'U' . user_hash_password(md5), with count 2^11.
$h = 'U' . d7_password_crypt('sha512', md5('drupal6 user'), '$S$9Ab3dEf7h');
add('drupal7', $h, [], checks(fn ($p) => d7_check_password($p, $h), 'drupal6 user'), 'Drupal 7 user_update_7000 U$S$ (md5 then sha512)');
$h = 'U' . d7_password_crypt('md5', md5('imported'), '$P$B12345678');
add('drupal7', $h, [], checks(fn ($p) => d7_check_password($p, $h), 'imported'), 'Drupal 7 user_check_password on U$P$ (md5 then phpass)');

// ---- Magento 1 ---------------------------------------------------------------------------
function m1_get_hash(string $algo, string $password, string $salt): string
{
    return hash($algo, $salt . $password) . ':' . $salt; // getHash($password, $salt)
}
function m1_validate_hash(string $algo, string $password, string $hash): bool
{
    $arr = explode(':', $hash);
    switch (count($arr)) {
        case 1:
            return hash_equals($hash, hash($algo, $password));
        case 2:
            return hash_equals($arr[0], hash($algo, $arr[1] . $password));
    }
    return false;
}
foreach ($PASSWORDS as $i => $pw) {
    $salt = ['Hx', 'k3', 'q7rT9vW2yZ4bC6dF8gJ0mN3pR5sU7xA1', 'aB', '00'][$i];
    $h = m1_get_hash('md5', $pw, $salt);
    add('magento1', $h, [], checks(fn ($p) => m1_validate_hash('md5', $p, $h), $pw), 'Mage_Core_Model_Encryption getHash md5 (CE)');
}
$h = m1_get_hash('sha256', 'enterprise', 'Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE');
add('magento1', $h, [], checks(fn ($p) => m1_validate_hash('sha256', $p, $h), 'enterprise'), 'Enterprise_Pci getHash sha256 (EE)');
$h = md5('no salt at all');
add('magento1', $h, [], checks(fn ($p) => m1_validate_hash('md5', $p, $h), 'no salt at all'), 'Mage_Core_Model_Encryption validateHash, unsalted');

// ---- Magento 2 ---------------------------------------------------------------------------
const M2_ARGON = [SODIUM_CRYPTO_SIGN_SEEDBYTES, SODIUM_CRYPTO_PWHASH_OPSLIMIT_INTERACTIVE, SODIUM_CRYPTO_PWHASH_MEMLIMIT_INTERACTIVE];
function m2_argon(string $data, int $seed, int $ops, int $mem, string $salt): string
{
    if (strlen($salt) < SODIUM_CRYPTO_PWHASH_SALTBYTES) {
        $salt = str_pad($salt, SODIUM_CRYPTO_PWHASH_SALTBYTES, $salt);
    } elseif (strlen($salt) > SODIUM_CRYPTO_PWHASH_SALTBYTES) {
        $salt = substr($salt, 0, SODIUM_CRYPTO_PWHASH_SALTBYTES);
    }
    return bin2hex(sodium_crypto_pwhash($seed, $data, $salt, $ops, $mem, SODIUM_CRYPTO_PWHASH_ALG_ARGON2ID13));
}
function m2_get_hash(string $password, string $salt, int $version): string
{
    if ($version === 2 || $version === 3) {
        [$seed, $ops, $mem] = M2_ARGON;
        $v = $version === 3 ? implode('_', [3, $seed, $ops, $mem]) : '2';
        return implode(':', [m2_argon($password, $seed, $ops, $mem, $salt), $salt, $v]);
    }
    return implode(':', [hash([0 => 'md5', 1 => 'sha256'][$version], $salt . $password), $salt, $version]);
}
function m2_upgrade(string $stored, int $latest): string
{
    // UpgradeHashAlgorithmCommand::execute
    [$hash, $salt, $version] = explode(':', $stored, 3);
    $new = m2_get_hash($hash, $salt, $latest);
    [$hash, $salt, $newVersion] = explode(':', $new, 3);
    return implode(':', [$hash, $salt, $version . ':' . $newVersion]);
}
function m2_is_valid_hash(string $password, string $hash): bool
{
    $parts = explode(':', $hash, 3);
    if (count($parts) !== 3) {
        return false; // Magento falls back to an HMAC with the deployment key: not a password hash
    }
    [$hash, $salt, $versions] = $parts;
    $recreated = $password;
    foreach (explode(':', $versions) as $v) {
        if (preg_match('/^3_(\d+)_(\d+)_(\d+)$/', $v, $m)) {
            $recreated = m2_argon($recreated, (int) $m[1], (int) $m[2], (int) $m[3], $salt);
        } elseif ((int) $v === 2) {
            [$seed, $ops, $mem] = M2_ARGON;
            $recreated = m2_argon($recreated, $seed, $ops, $mem, $salt);
        } else {
            $recreated = hash([0 => 'md5', 1 => 'sha256'][(int) $v], $salt . $recreated);
        }
    }
    return hash_equals($hash, $recreated);
}
$m2salt = 'PwX2yqs0D3BLdWJ9TDbiwM2JTxH4jNAa'; // 32 chars, like Random::getRandomString(32)
$m2 = [
    ['password', m2_get_hash('password', $m2salt, 0)],
    ['correct horse battery staple', m2_get_hash('correct horse battery staple', $m2salt, 1)],
    ["p\u{00e4}ssw\u{00f6}rd\u{20ac}", m2_get_hash("p\u{00e4}ssw\u{00f6}rd\u{20ac}", $m2salt, 2)],
    ['a&b"<c>\'d', m2_get_hash('a&b"<c>\'d', 'short', 3)],
    ['sha256 then argon', m2_upgrade(m2_get_hash('sha256 then argon', $m2salt, 1), 2)],
    ['md5 then sha256', m2_upgrade(m2_get_hash('md5 then sha256', 'ab', 0), 1)],
    ['md5 sha256 argon', m2_upgrade(m2_upgrade(m2_get_hash('md5 sha256 argon', $m2salt, 0), 1), 3)],
];
foreach ($m2 as [$pw, $h]) {
    add('magento2', $h, [], checks(fn ($p) => m2_is_valid_hash($p, $h), $pw), 'Magento 2.4 Encryptor getHash/isValidHash (+ customer:hash:upgrade)');
}

// ---- PrestaShop 1.6 ----------------------------------------------------------------------
$cookieKey = 'T3stC00kieKeyNotARealOne0123456789abcdefghijklmnopqrstuv'; // 56 chars like _COOKIE_KEY_
foreach ($PASSWORDS as $pw) {
    $h = md5($cookieKey . $pw);
    add('prestashop', $h, ['params' => ['key_id' => 'ps_cookie']], checks(fn ($p) => hash_equals($h, md5($cookieKey . $p)), $pw), 'PrestaShop 1.6 Tools::encrypt', ['ps_cookie' => $cookieKey]);
}

// ---- OpenCart 1.5-3 ----------------------------------------------------------------------
function oc_hash(string $salt, string $password): string
{
    return sha1($salt . sha1($salt . sha1($password)));
}
foreach ($PASSWORDS as $i => $pw) {
    $salt = ['a1b2c3d4e', 'Zq9Xw8Vu7', 'k4L5m6N7o', '123456789', 'AbCdEfGhI'][$i];
    $h = oc_hash($salt, $pw);
    add('opencart', $h, ['salt' => $salt], checks(fn ($p) => hash_equals($h, oc_hash($salt, $p)), $pw), 'OpenCart addCustomer sha1(salt.sha1(salt.sha1(pw)))');
}
$h = md5('old opencart');
add('opencart', $h, [], checks(fn ($p) => hash_equals($h, md5($p)), 'old opencart'), 'OpenCart login md5 fallback');
// A password with & " < > set through the storefront was hashed after Request::clean.
$pw = 'a&b"<c>\'d';
$h = oc_hash('s4lt5alt5', htmlspecialchars($pw, ENT_COMPAT, 'UTF-8'));
add('opencart', $h, ['salt' => 's4lt5alt5', 'params' => ['html_escaped' => true]], checks(fn ($p) => hash_equals($h, oc_hash('s4lt5alt5', htmlspecialchars($p, ENT_COMPAT, 'UTF-8'))), $pw), 'OpenCart addCustomer after Request::clean htmlspecialchars');

// ---- Joomla 1.5-2.5 ----------------------------------------------------------------------
foreach ($PASSWORDS as $i => $pw) {
    $salt = substr(str_repeat(['Jx8Kq2', 'abcdefghijklmnopqrstuvwxyz012345', 'Z', '0011', 'saltsaltsalt'][$i], 1), 0, 32);
    $h = md5($pw . $salt) . ':' . $salt;
    add('joomla', $h, [], checks(fn ($p) => hash_equals(md5($p . $salt), explode(':', $h)[0]), $pw), 'Joomla JUserHelper::getCryptedPassword md5-hex');
}

// ---- Shopware 5 --------------------------------------------------------------------------
function sw_sha256_internal(string $password, string $salt, $iterations): string
{
    $hash = '';
    for ($i = 0; $i <= $iterations; $i++) {
        $hash = hash('sha256', $hash . $password . $salt);
    }
    return $iterations . ':' . $salt . ':' . $hash;
}
function sw_sha256_valid(string $password, string $hash): bool
{
    [$iterations, $salt] = explode(':', $hash);
    return hash_equals($hash, sw_sha256_internal($password, $salt, $iterations));
}
foreach ($PASSWORDS as $i => $pw) {
    $salt = ['Dp4gDhvJmz1sVxkN2RjKhQ', 'abc.def.ghi.jkl.mno.pq', 'x', 'Q1w2E3r4T5y6U7i8O9p0As', '.......................'][$i];
    $h = sw_sha256_internal($pw, $salt, [1000, 1000, 10, 1000, 0][$i]);
    add('shopware5_sha256', $h, [], checks(fn ($p) => sw_sha256_valid($p, $h), $pw), 'Shopware 5 Encoder\\Sha256');
}
function sw_md5_valid(string $password, string $hash): bool
{
    if (strpos($hash, ':') === false) {
        return $hash == md5($password);
    }
    [$md5, $salt] = explode(':', $hash);
    return $md5 == md5($password . $salt);
}
$h = md5('shopware customer');
add('shopware5_md5', $h, [], checks(fn ($p) => sw_md5_valid($p, $h), 'shopware customer'), 'Shopware 5 Encoder\\Md5 encodePassword');
$h = md5('imported customer' . 'xyzSalt') . ':xyzSalt';
add('shopware5_md5', $h, [], checks(fn ($p) => sw_md5_valid($p, $h), 'imported customer'), 'Shopware 5 Encoder\\Md5 with md5:salt');
$backendSalt = 'A9ASD:_AD!_=%a8nx0asssblPlasS$';
$h = md5($backendSalt . md5('backend admin'));
add('shopware5_md5', $h, ['params' => ['variant' => 'backend']], checks(fn ($p) => hash_equals($h, md5($backendSalt . md5($p))), 'backend admin'), 'Shopware 5 Encoder\\LegacyBackendMd5');

// ---- Plain digests of home-grown PHP shops (scheme "digest") -------------------------------
// Each one is a line of PHP such shops really run; "params" is the descriptor for import_hash.
$pepper = 'T3st-Pepper-Not-Real';
$plain = [
    ['md5($p)', fn ($p, $s) => md5($p), null, ['algorithm' => 'md5']],
    ['sha1($s . $p)', fn ($p, $s) => sha1($s . $p), 'Xy7!salt', ['algorithm' => 'sha1', 'salt_position' => 'before']],
    ['hash(sha256, $p . $s)', fn ($p, $s) => hash('sha256', $p . $s), 'pinch', ['algorithm' => 'sha256', 'salt_position' => 'after']],
    ['base64_encode(hash(sha512, $s . $p, true))', fn ($p, $s) => base64_encode(hash('sha512', $s . $p, true)), 'b64salt', ['algorithm' => 'sha512', 'encoding' => 'base64', 'salt_position' => 'before']],
    ['strtoupper(sha1($p))', fn ($p, $s) => strtoupper(sha1($p)), null, ['algorithm' => 'sha1', 'encoding' => 'hexu']],
    ['md5(md5($p))', fn ($p, $s) => md5(md5($p)), null, ['algorithm' => 'md5', 'iterations' => 2]],
    ['sha256 x3 raw', fn ($p, $s) => bin2hex(hash('sha256', hash('sha256', hash('sha256', $p, true), true), true)), null, ['algorithm' => 'sha256', 'iterations' => 3, 'chain' => 'raw']],
    ['hash_hmac(sha256, $p, PEPPER)', fn ($p, $s) => hash_hmac('sha256', $p, $pepper), null, ['algorithm' => 'sha256', 'key_id' => 'pepper1']],
    ['hash_hmac(sha512, $s . $p, PEPPER) base64', fn ($p, $s) => base64_encode(hash_hmac('sha512', $s . $p, $pepper, true)), 'hm', ['algorithm' => 'sha512', 'encoding' => 'base64', 'salt_position' => 'before', 'key_id' => 'pepper1', 'key_mode' => 'hmac']],
    ['hash_hmac(sha1, $p, $s)', fn ($p, $s) => hash_hmac('sha1', $p, $s), 'per-user-key', ['algorithm' => 'sha1', 'key_mode' => 'hmac-salt']],
    ['sha256("{$s}--{$p}--" . PEPPER)', fn ($p, $s) => hash('sha256', "{$s}--{$p}--" . $pepper), 'tmpl', ['algorithm' => 'sha256', 'template' => '{salt}--{password}--{pepper}', 'key_id' => 'pepper1', 'key_mode' => 'pepper']],
    ['md5(latin1 $p . $s)', fn ($p, $s) => md5(iconv('UTF-8', 'ISO-8859-1', $p) . $s), 'l1', ['algorithm' => 'md5', 'salt_position' => 'after', 'password_encoding' => 'latin-1']],
    ['sha1(utf16le $p) (.NET Encoding.Unicode)', fn ($p, $s) => sha1(iconv('UTF-8', 'UTF-16LE', $p)), null, ['algorithm' => 'sha1', 'password_encoding' => 'utf-16le']],
    ['sha256(hex salt bytes . $p)', fn ($p, $s) => hash('sha256', hex2bin($s) . $p), '00ff10e0', ['algorithm' => 'sha256', 'salt_position' => 'before', 'salt_encoding' => 'hex']],
];
foreach ($plain as $i => [$what, $fn, $salt, $params]) {
    $pw = $PASSWORDS[$i % 4]; // the 4th is 'a&b"<c>\'d'; index 2 is non-ASCII (Latin-1 representable)
    $h = $fn($pw, $salt);
    $c = checks(fn ($p) => hash_equals($h, $fn($p, $salt)), $pw);
    $import = ['params' => $params];
    if ($salt !== null) {
        $import['salt'] = $salt;
    }
    $keyring = isset($params['key_id']) ? [$params['key_id'] => $pepper] : [];
    add('digest', $h, $import, $c, "PHP: $what", $keyring);
}

echo json_encode(['generator' => 'tests/vectors/gen_php.php', 'php' => PHP_VERSION, 'vectors' => $vectors], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
