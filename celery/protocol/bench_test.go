package protocol

import "testing"

func BenchmarkDecodeV2(b *testing.B) {
	for _, name := range []string{"v2_plain_args#0", "v2_chain#0", "v2_kwargs_unicode_nested#0"} {
		env := fixtureByName(b, name).envelope(b)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(env.Body)))
			for b.Loop() {
				if _, err := Decode(env, Accept{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeV2(b *testing.B) {
	for _, name := range []string{"v2_plain_args#0", "v2_chain#0", "v2_kwargs_unicode_nested#0"} {
		m, err := Decode(fixtureByName(b, name).envelope(b), Accept{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodeV2(m, EncodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
