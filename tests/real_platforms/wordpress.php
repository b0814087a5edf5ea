<?php
/*
 * WordPress's own login code, without a database: loads Debian's wordpress package
 * (/usr/share/wordpress, or WP_ROOT) and answers, as JSON on stdout, for the JSON on stdin:
 *
 *   {"hash": [password, ...]}             -> {"hashes": [wp_hash_password(password), ...]}
 *   {"login": [[typed, stored hash], ...]} -> {"accepted": [bool, ...]}
 *
 * "login" runs WordPress's real wp_authenticate() (which trims the typed password) with an
 * 'authenticate' filter that stands in for the users table: it returns a user when WordPress's
 * real wp_check_password() accepts the password wp_authenticate() passed on against the stored
 * hash. With WP68_PLUGGABLE set, that file's functions are defined first, as a plugin's
 * pluggable functions are, so WordPress 6.8's wp_check_password/wp_hash_password take over.
 */

$root = rtrim(getenv('WP_ROOT') ?: '/usr/share/wordpress', '/');
define('ABSPATH', $root . '/');
define('WPINC', 'wp-includes');
$GLOBALS['locale'] = 'en_US';

require ABSPATH . WPINC . '/load.php';
require ABSPATH . WPINC . '/plugin.php';
require ABSPATH . WPINC . '/class-wp-error.php';
require ABSPATH . WPINC . '/pomo/translations.php';
require ABSPATH . WPINC . '/l10n.php';
require ABSPATH . WPINC . '/formatting.php';
require ABSPATH . WPINC . '/kses.php';
if (getenv('WP68_PLUGGABLE')) {
    require getenv('WP68_PLUGGABLE');
}
require ABSPATH . WPINC . '/pluggable.php';

$request = json_decode(stream_get_contents(STDIN), true);
$out = [];
if (isset($request['hash'])) {
    $out['hashes'] = array_map('wp_hash_password', $request['hash']);
}
if (isset($request['login'])) {
    $stored = null;
    add_filter('authenticate', function ($user, $username, $password) use (&$stored) {
        return wp_check_password($password, $stored) ? (object) ['ID' => 1] : null;
    }, 20, 3);
    $out['accepted'] = [];
    foreach ($request['login'] as [$typed, $hash]) {
        $stored = $hash;
        $out['accepted'][] = !is_wp_error(wp_authenticate('customer', $typed));
    }
}
echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
