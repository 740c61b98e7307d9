# @summary Installs and configures Apache (demo).
class apache (
  String $service_name = 'httpd',
  Hash $options = { 'keepalive' => 'On' },
) {
  package { 'httpd': ensure => installed }
  -> service { $service_name: ensure => running }
}
