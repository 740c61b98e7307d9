# @summary Run stages, as stdlib provides them.
class stdlib::stages {
  stage { 'setup': before => Stage['main'] }
  stage { 'deploy': require => Stage['main'] }
}
