# @summary Keeps time (demo).
class ntp (Array[String] $servers = ['0.pool.ntp.org']) {
  contain ntp::config
}
