# @summary Demo stand-in for stdlib's main class.
class stdlib {
  include stdlib::stages
}
