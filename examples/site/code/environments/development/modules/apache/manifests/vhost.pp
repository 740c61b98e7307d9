# @summary A virtual host (demo).
define apache::vhost (String $docroot) {
  file { $docroot: ensure => directory }
}
