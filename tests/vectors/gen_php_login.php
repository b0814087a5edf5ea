<?php
/*
 * Known-answer vectors for coverage a migration meets beside the main shop formats, made with
 * PHP the way each platform computes them. Run:
 *   php tests/vectors/gen_php_login.php > tests/vectors/php_login.json
 *
 * - Joomla 3.2: JUserHelper::verifyPassword's '{SHA256}' branch, restated:
 *   getCryptedPassword($password, $salt, 'sha256', true) =
 *   '{SHA256}' . hash('sha256', $password . $salt) . ':' . $salt  (no salt: sha256 alone),
 *   compared with the whole stored string.
 * - Drupal 7 'U$' accounts (user_update_7000) with passwords over 512 bytes: includes/password.inc
 *   user_check_password md5()s the password first, so _password_crypt's 512-byte cap applies to
 *   the md5, and a long password verifies; a plain '$S$' account refuses it.
 */

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

$WRONG = ['Password', 'password ', ''];
function checks(callable $check, string $password, array $extra = []): array
{
    global $WRONG;
    $out = [['password' => $password, 'ok' => $check($password)]];
    foreach (array_merge($WRONG, $extra) as $w) {
        if ($w !== $password) {
            $out[] = ['password' => $w, 'ok' => $check($w)];
        }
    }
    return $out;
}
$vectors = [];
function add(string $scheme, string $stored, array $checks, string $source): void
{
    global $vectors;
    if (!$checks[0]['ok']) {
        fwrite(STDERR, "platform rejects its own hash: $scheme\n");
        exit(1);
    }
    $vectors[] = ['scheme' => $scheme, 'stored' => $stored, 'import' => new stdClass(), 'checks' => $checks, 'source' => $source];
}

// ---- Joomla 3.2 {SHA256} -----------------------------------------------------------------
function joomla_sha256(string $password, string $salt): string
{
    $encrypted = ($salt) ? hash('sha256', $password . $salt) . ':' . $salt : hash('sha256', $password);
    return '{SHA256}' . $encrypted;
}
function joomla_verify(string $password, string $hash): bool
{
    $parts = explode(':', $hash);
    $salt = @$parts[1];
    return hash_equals($hash, joomla_sha256($password, (string) $salt));
}
$pws = ['password', 'correct horse battery staple', "p\u{00e4}ssw\u{00f6}rd\u{20ac}", str_repeat('long-', 30)];
$salts = ['iVQ3RJ5BNGCiAT9yWeyTBvnKu7Im1kWZ', 'abc', 'Zz09Zz09Zz09Zz09Zz09Zz09Zz09Zz09', ''];
foreach ($pws as $i => $pw) {
    $h = joomla_sha256($pw, $salts[$i]);
    add('joomla_sha256', $h, checks(fn ($p) => joomla_verify($p, $h), $pw), 'Joomla 3.2 JUserHelper::verifyPassword {SHA256}');
}

// ---- Drupal 7 U$ with long passwords ------------------------------------------------------
function d7_base64_encode(string $input, int $count): string
{
    $output = '';
    $i = 0;
    do {
        $value = ord($input[$i++]);
        $output .= ITOA64[$value & 0x3f];
        if ($i < $count) {
            $value |= ord($input[$i]) << 8;
        }
        $output .= ITOA64[($value >> 6) & 0x3f];
        if ($i++ >= $count) {
            break;
        }
        if ($i < $count) {
            $value |= ord($input[$i]) << 16;
        }
        $output .= ITOA64[($value >> 12) & 0x3f];
        if ($i++ >= $count) {
            break;
        }
        $output .= ITOA64[($value >> 18) & 0x3f];
    } while ($i < $count);
    return $output;
}
function d7_password_crypt(string $algo, string $password, string $setting)
{
    if (strlen($password) > 512) {
        return false;
    }
    $setting = substr($setting, 0, 12);
    $count_log2 = strpos(ITOA64, $setting[3]);
    $salt = substr($setting, 4, 8);
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
$long = str_repeat('0123456789abcdef', 40);   // 640 bytes
$longer = str_repeat("\u{00e9}", 400);          // 800 bytes
foreach ([$long, $longer] as $pw) {
    $h = 'U' . d7_password_crypt('sha512', md5($pw), '$S$9Ab3dEf7h');
    add('drupal7', $h, checks(fn ($p) => d7_check_password($p, $h), $pw, [substr($pw, 0, 512)]), 'Drupal 7 user_check_password on U$S$ with a password over 512 bytes');
    $h = 'U' . d7_password_crypt('md5', md5($pw), '$P$B12345678');
    add('drupal7', $h, checks(fn ($p) => d7_check_password($p, $h), $pw, [substr($pw, 0, 512)]), 'Drupal 7 user_check_password on U$P$ with a password over 512 bytes');
}
// a plain $S$ account refuses the same long password (the cap applies to it directly)
$h = d7_password_crypt('sha512', substr($long, 0, 512), '$S$9Ab3dEf7h');
add('drupal7', $h, checks(fn ($p) => d7_check_password($p, $h), substr($long, 0, 512), [$long]), 'Drupal 7 _password_crypt refuses over 512 bytes');

echo json_encode(['generator' => 'tests/vectors/gen_php_login.php', 'php' => PHP_VERSION, 'vectors' => $vectors], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
