# @summary ntp.conf (demo).
class ntp::config {
  file { '/etc/ntp.conf': content => "server ${ntp::servers[0]}\n" }
}
