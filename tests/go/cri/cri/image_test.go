package cri

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	imageDigest = flag.String("image-digest", "", "the manifest digest of -image")
	imageID     = flag.String("image-id", "", "the config digest of -image: the image's id")
	imageSize   = flag.Uint64("image-size", 0, "the size of -image: manifest, config and layers as stored")
)

// repository is a reference without its tag: "127.0.0.1:PORT/berth/single".
func repository(ref string) string {
	return ref[:strings.LastIndex(ref, ":")]
}

// TestImageLifecycle: an image pulled from the test registry (plain HTTP, through the mirror entry) is
// listed and described with its tag, digest, size and id, can be found by each of them, and is gone
// after RemoveImage, which succeeds a second time as the kubelet expects.
func TestImageLifecycle(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	ref := *image
	// A scenario before may have pulled it: start from nothing.
	if _, err := c.image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage %s before the test: %v", ref, err)
	}
	pulled, err := c.image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	if pulled.ImageRef != *imageID {
		t.Errorf("PullImage ImageRef %q, want the config digest %q", pulled.ImageRef, *imageID)
	}
	byDigest := repository(ref) + "@" + *imageDigest

	listed, err := c.image.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found *runtime.Image
	for _, img := range listed.Images {
		if img.Id == *imageID {
			found = img
		}
	}
	if found == nil {
		t.Fatalf("ListImages has no %s: %v", *imageID, listed.Images)
	}
	checkImage(t, "ListImages", found, ref, byDigest)

	filtered, err := c.image.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{
		Image: &runtime.ImageSpec{Image: ref},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(filtered.Images) != 1 || filtered.Images[0].Id != *imageID {
		t.Errorf("ListImages filtered by %s: %v", ref, filtered.Images)
	}

	for _, name := range []string{ref, byDigest, *imageID} {
		st, err := c.image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: name}, Verbose: true})
		if err != nil {
			t.Fatalf("ImageStatus %s: %v", name, err)
		}
		if st.Image == nil {
			t.Fatalf("ImageStatus %s: no image", name)
		}
		checkImage(t, "ImageStatus "+name, st.Image, ref, byDigest)
		t.Logf("ImageStatus %s: %+v", name, st.Image)
		// The verbose info is the image's OCI config (what `crictl inspecti` shows).
		var info struct {
			ImageSpec struct {
				Architecture string `json:"architecture"`
				OS           string `json:"os"`
				Config       struct {
					Cmd []string `json:"Cmd"`
				} `json:"config"`
			} `json:"imageSpec"`
			ChainID string `json:"chainID"`
		}
		if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
			t.Fatalf("ImageStatus %s verbose info: %v: %q", name, err, st.Info["info"])
		}
		if info.ImageSpec.OS != "linux" || info.ImageSpec.Architecture != "amd64" ||
			strings.Join(info.ImageSpec.Config.Cmd, " ") != "/bin/sh" || !strings.HasPrefix(info.ChainID, "sha256:") {
			t.Errorf("ImageStatus %s verbose info: %+v", name, info)
		}
	}

	if _, err := c.image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage %s: %v", ref, err)
	}
	for _, name := range []string{ref, byDigest, *imageID} {
		st, err := c.image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: name}})
		if err != nil {
			t.Fatalf("ImageStatus %s after RemoveImage: %v", name, err)
		}
		if st.Image != nil {
			t.Errorf("ImageStatus %s after RemoveImage: %+v, want none", name, st.Image)
		}
	}
	listed, err = c.image.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range listed.Images {
		if img.Id == *imageID {
			t.Errorf("ListImages after RemoveImage still has %+v", img)
		}
	}
	// Removing what is not there is not an error for the kubelet's image GC.
	if _, err := c.image.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("RemoveImage %s a second time: %v", ref, err)
	}
}

func checkImage(t *testing.T, what string, img *runtime.Image, tag, digest string) {
	t.Helper()
	if img.Id != *imageID {
		t.Errorf("%s: id %q, want %q", what, img.Id, *imageID)
	}
	if len(img.RepoTags) != 1 || img.RepoTags[0] != tag {
		t.Errorf("%s: repo tags %v, want [%s]", what, img.RepoTags, tag)
	}
	if len(img.RepoDigests) != 1 || img.RepoDigests[0] != digest {
		t.Errorf("%s: repo digests %v, want [%s]", what, img.RepoDigests, digest)
	}
	if img.Size_ != *imageSize {
		t.Errorf("%s: size %d, want %d", what, img.Size_, *imageSize)
	}
	// The fixture's config names no user: no uid, no user name.
	if img.Uid != nil || img.Username != "" {
		t.Errorf("%s: uid %v username %q, want neither", what, img.Uid, img.Username)
	}
}

// TestImageUser: ImageStatus reads the user from the image config: a numeric user is a uid (the group
// after ":" is dropped), a name is a user name.
func TestImageUser(t *testing.T) {
	c := connect(t)
	pull(t, c, *pauseImage)
	pull(t, c, *httpdImage)
	pause, err := c.image.ImageStatus(timeout(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: *pauseImage}})
	if err != nil {
		t.Fatal(err)
	}
	if pause.Image.GetUid() == nil || pause.Image.Uid.Value != 65535 || pause.Image.Username != "" {
		t.Errorf("pause image (User 65535:65535): uid %v username %q, want uid 65535", pause.Image.GetUid(), pause.Image.GetUsername())
	}
	httpd, err := c.image.ImageStatus(timeout(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: *httpdImage}})
	if err != nil {
		t.Fatal(err)
	}
	if httpd.Image.GetUid() != nil || httpd.Image.GetUsername() != "nobody" {
		t.Errorf("httpd image (User nobody): uid %v username %q, want username nobody", httpd.Image.GetUid(), httpd.Image.GetUsername())
	}
}

// TestImageFsInfo: the image filesystem is the snapshotter's folder under the runtime's root, with its
// usage.
func TestImageFsInfo(t *testing.T) {
	c := connect(t)
	pull(t, c, *image)
	resp, err := c.image.ImageFsInfo(timeout(t), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo: %v, want one filesystem", resp.ImageFilesystems)
	}
	fs := resp.ImageFilesystems[0]
	t.Logf("image filesystem: %+v", fs)
	want := *runtimeRoot + "/io.containerd.snapshotter.v1.overlayfs"
	if fs.GetFsId().GetMountpoint() != want {
		t.Errorf("ImageFsInfo mountpoint %q, want %q", fs.GetFsId().GetMountpoint(), want)
	}
	if fs.Timestamp <= 0 || fs.UsedBytes == nil || fs.InodesUsed == nil {
		t.Errorf("ImageFsInfo: %+v, want a timestamp, used bytes and inodes", fs)
	}
}
