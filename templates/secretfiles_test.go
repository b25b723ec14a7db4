package templates

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestWithTodaysSecrets_RendersTheReleasesSecretFilesWithTodaysValues:
// a release's files, saved with its stack model, come back with the
// roles and the userlist rendered for today's passwords: byte for byte
// what a render with today's values makes, while every other file stays
// as saved. Without a model, the files are returned as saved.
func TestWithTodaysSecrets_RendersTheReleasesSecretFilesWithTodaysValues(t *testing.T) {
	stack := loadOBCMS(t, "production")
	old, rotated := testSecrets(), testSecrets()
	rotated["obcms_user_password"] = "rotatedUserPass9Zq"
	saved, err := Render(stack, old)
	if err != nil {
		t.Fatal(err)
	}
	model, err := StackModel(stack)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(model.Data), old["obcms_user_password"]) || model.Mode != ModeSecret {
		t.Fatalf("the stack model holds a secret value, or is not 0600 (%v)", model.Mode)
	}
	saved = append(saved, model)
	want, err := Render(stack, rotated)
	if err != nil {
		t.Fatal(err)
	}

	got, recorded, err := WithTodaysSecrets(saved, rotated)
	if err != nil || !recorded {
		t.Fatalf("WithTodaysSecrets: recorded %v, %v", recorded, err)
	}
	byPath := func(as []Artifact, path string) []byte {
		i := slices.IndexFunc(as, func(a Artifact) bool { return a.Path == path })
		if i < 0 {
			t.Fatalf("no %s", path)
		}
		return as[i].Data
	}
	for _, path := range []string{PathPgBouncerUserlist, PathPostgresRoles, PathManifest} {
		if !bytes.Equal(byPath(got, path), byPath(want, path)) {
			t.Errorf("%s is not what today's secrets render", path)
		}
		if bytes.Equal(byPath(got, path), byPath(saved, path)) {
			t.Errorf("%s is still the saved one after a rotation", path)
		}
	}
	if !bytes.Equal(byPath(got, PathPgBouncerIni), byPath(saved, PathPgBouncerIni)) {
		t.Error("a file not derived from secrets changed")
	}
	if len(got) != len(saved) {
		t.Errorf("%d files back, %d saved", len(got), len(saved))
	}

	same, recorded, err := WithTodaysSecrets(saved[:len(saved)-1], rotated)
	if err != nil || recorded || !bytes.Equal(byPath(same, PathPgBouncerUserlist), byPath(saved, PathPgBouncerUserlist)) {
		t.Errorf("without a model: recorded %v, %v; the files must come back as saved", recorded, err)
	}
}
