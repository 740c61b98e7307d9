# @summary Example Corp's baseline.
class profile::base {
  class { 'ntp': servers => ['ntp.examplecorp.invalid'] }
  contain stdlib::stages
}
