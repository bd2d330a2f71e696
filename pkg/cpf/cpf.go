// Package cpf parses and validates Brazilian CPF numbers (Cadastro de
// Pessoas Físicas). It is a data-format package like net/mail: every service
// validates CPFs at its own edge, so the rule lives once, here.
package cpf

import (
	"errors"
)

// CPF is a validated CPF: exactly 11 ASCII digits with correct check digits.
type CPF string

// Errors returned by Parse. Messages are safe to show to a caller.
var (
	ErrLength      = errors.New("a CPF has 11 digits")
	ErrCharacter   = errors.New("a CPF may contain only digits, '.', '-' and spaces")
	ErrRepeated    = errors.New("a CPF cannot be one digit repeated")
	ErrCheckDigits = errors.New("CPF check digits do not match")
)

// Parse accepts a CPF with or without punctuation ("123.456.789-09" or
// "12345678909") and returns its 11 digits, or an error saying what is wrong.
func Parse(s string) (CPF, error) {
	if len(s) > 32 {
		return "", ErrLength
	}
	var d [11]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == 11 {
				return "", ErrLength
			}
			d[n] = c - '0'
			n++
		case c == '.' || c == '-' || c == ' ':
		default:
			return "", ErrCharacter
		}
	}
	if n != 11 {
		return "", ErrLength
	}
	same := true
	for i := 1; i < 11; i++ {
		if d[i] != d[0] {
			same = false
			break
		}
	}
	if same {
		return "", ErrRepeated
	}
	if checkDigit(d[:9]) != d[9] || checkDigit(d[:10]) != d[10] {
		return "", ErrCheckDigits
	}
	var out [11]byte
	for i := range d {
		out[i] = d[i] + '0'
	}
	return CPF(out[:]), nil
}

// checkDigit computes the next check digit of the digits given (9 or 10).
func checkDigit(digits []byte) byte {
	sum := 0
	weight := len(digits) + 1
	for _, v := range digits {
		sum += int(v) * weight
		weight--
	}
	r := (sum * 10) % 11
	if r == 10 {
		r = 0
	}
	return byte(r)
}

// Complete appends the two check digits to a 9-digit base, for generating
// demo and test data. It returns "" if base is not 9 digits.
func Complete(base string) CPF {
	if len(base) != 9 {
		return ""
	}
	d := make([]byte, 0, 11)
	for i := 0; i < 9; i++ {
		if base[i] < '0' || base[i] > '9' {
			return ""
		}
		d = append(d, base[i]-'0')
	}
	d = append(d, checkDigit(d))
	d = append(d, checkDigit(d))
	for i := range d {
		d[i] += '0'
	}
	return CPF(d)
}

// String returns the 11 digits.
func (c CPF) String() string { return string(c) }

// Formatted returns the CPF as 123.456.789-09.
func (c CPF) Formatted() string {
	s := string(c)
	if len(s) != 11 {
		return s
	}
	return s[0:3] + "." + s[3:6] + "." + s[6:9] + "-" + s[9:11]
}

// Masked returns ***.456.789-** for logs.
func (c CPF) Masked() string {
	s := string(c)
	if len(s) != 11 {
		return "***"
	}
	return "***." + s[3:6] + "." + s[6:9] + "-**"
}
