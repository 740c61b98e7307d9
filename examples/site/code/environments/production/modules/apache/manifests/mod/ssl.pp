# @summary mod_ssl (demo).
class apache::mod::ssl (
  Boolean $ssl_compression = false,
) {
  require apache
  $conf = @("CONF")
    SSLCompression ${ssl_compression}
    | CONF
}
