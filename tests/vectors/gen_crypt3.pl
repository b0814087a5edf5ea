#!/usr/bin/perl
# Known-answer vectors made by the system's crypt(3) (libxcrypt on Debian 12), through Perl's
# own crypt(): yescrypt $y$ (the default of /etc/shadow on current Debian, Ubuntu, Fedora),
# traditional DES crypt, and the same strings behind LDAP's {CRYPT} prefix, which OpenLDAP
# checks with this very crypt(3).
#
# Run:  perl tests/vectors/gen_crypt3.pl > tests/vectors/crypt3.json
use strict;
use warnings;
use JSON::PP;

my @passwords = ('password', 'correct horse battery staple', "p\x{e4}ssw\x{f6}rd\x{20ac}", 'x' x 100);
my @wrong = ('Password', 'password ', 'wrong');
my @alphabet = ('.', '/', 0 .. 9, 'A' .. 'Z', 'a' .. 'z');

sub salt { my ($n) = @_; return join '', map { $alphabet[int(rand(64))] } 1 .. $n; }

sub check {
    my ($stored, $password) = @_;
    utf8::encode(my $bytes = $password);
    my $got = crypt($bytes, $stored);
    return (defined $got && $got eq $stored) ? JSON::PP::true : JSON::PP::false;
}

sub checks {
    my ($stored, $password) = @_;
    my @out = ({ password => $password, ok => check($stored, $password) });
    for my $w (@wrong) {
        push @out, { password => $w, ok => check($stored, $w) } if $w ne $password;
    }
    return \@out;
}

sub make {
    my ($password, $setting) = @_;
    utf8::encode(my $bytes = $password);
    my $stored = crypt($bytes, $setting);
    die "crypt(3) refused $setting\n" if !defined $stored || $stored =~ /^\*/;
    return $stored;
}

my (@vectors, @ldap);
for my $pw (@passwords) {
    for my $params ('j9T', 'j75', 'jBT') {    # default (16 MiB), a small one, 64 MiB
        my $h = make($pw, "\$y\$$params\$" . salt(16) . '$');
        push @vectors, { scheme => 'yescrypt', stored => $h, import => {},
            checks => checks($h, $pw), source => "crypt(3) yescrypt \$y\$$params" };
    }
    my $h = make($pw, salt(2));
    # DES reads only the first 8 characters: the platform's answers say so
    my $checks = checks($h, $pw);
    push @$checks, { password => substr($pw, 0, 8), ok => check($h, substr($pw, 0, 8)) };
    push @vectors, { scheme => 'des_crypt', stored => $h, import => {}, checks => $checks,
        source => 'crypt(3) traditional DES' };
}
for my $setting ('$1$' . salt(8) . '$', '$5$' . salt(16) . '$', '$6$rounds=10000$' . salt(16) . '$',
                 '$y$j9T$' . salt(16) . '$', '$2b$05$' . salt(21) . 'e', salt(2)) {
    my $h = make('password', $setting);
    for my $prefix ('{CRYPT}', '{crypt}') {
        push @ldap, { stored => $prefix . $h, canonical => $h, checks => checks($h, 'password'),
            source => 'OpenLDAP {CRYPT}: crypt(3) of the part after the prefix' };
    }
}
print JSON::PP->new->utf8->pretty->canonical->encode({
    generator => 'tests/vectors/gen_crypt3.pl', vectors => \@vectors, ldap_crypt => \@ldap });
